import gzip
import json

import pandas as pd
import pytest

from crystalreasoner.data import (
    DATASETS,
    DatasetBundle,
    bundled_data_dir,
    hash_split,
    list_datasets,
    load_dataset,
)
from crystalreasoner.errors import DataError

MP20_DIR = bundled_data_dir() / "mp_20_subset"
ELASTIC_JSON = bundled_data_dir() / "elasticity_thermal" / "mp-binary-pbe-elasticity-2025.1.json.gz"


def test_registry_lists_the_bundled_datasets():
    assert list_datasets() == ["mp-binary-elastic", "mp20-mini"]
    assert all(DATASETS[name].description for name in list_datasets())


def test_mp20_mini_has_every_csv_row(mp20_mini):
    for split, expected in (("train", 847), ("val", 123), ("test", 142)):
        rows = len(pd.read_csv(MP20_DIR / f"{split}.csv.gz"))
        assert rows == expected
        skipped = [s for s in mp20_mini.skipped if s.source == f"mp20-mini/{split}.csv.gz"]
        assert len(mp20_mini.records(split)) + len(skipped) == rows
        assert all(s.reason for s in skipped)
    # Every bundled row is usable (README: all CIFs parse, 1-20 atoms, splits disjoint).
    assert mp20_mini.summary()["records"] == {"train": 847, "val": 123, "test": 142}
    assert mp20_mini.skipped == []
    record = mp20_mini.records("val")[0]
    assert record.split == "val" and record.source == "mp20-mini/val.csv.gz"
    assert set(record.properties) == {
        "formation_energy_per_atom",
        "band_gap",
        "e_above_hull",
        "spacegroup_number",
    }


def test_mp_binary_elastic_has_moduli_and_accounts_for_every_entry(mp_binary_elastic):
    with gzip.open(ELASTIC_JSON, "rt") as handle:
        n_entries = len(json.load(handle))
    records = mp_binary_elastic.records()
    assert len(records) + len(mp_binary_elastic.skipped) == n_entries == 3953
    assert all(s.reason.endswith("atoms > max_atoms=20") for s in mp_binary_elastic.skipped)
    assert all({"bulk_modulus_vrh", "shear_modulus_vrh"} <= set(r.properties) for r in records)
    assert all(r.n_elements == 2 and len(r.structure) <= 20 for r in records)
    # Pinned: the split depends only on the material ids, never on the run or the machine.
    assert mp_binary_elastic.summary()["records"] == {"train": 3024, "val": 358, "test": 416}


def test_splits_are_deterministic_and_disjoint(mp20_mini, mp_binary_elastic):
    # Pinned values: sha256 of the id, so every run and machine agrees.
    assert [hash_split(i) for i in ("mp-149", "mp-22862", "mp-2", "mvc-5870")] == [
        "train",
        "test",
        "val",
        "train",
    ]
    for bundle in (mp20_mini, mp_binary_elastic):
        ids = [r.material_id for r in bundle.records()]
        assert len(ids) == len(set(ids))
        assert all(r.split == split for split, rs in bundle.splits.items() for r in rs)
    again = load_dataset("mp-binary-elastic")
    assert again.fingerprint() == mp_binary_elastic.fingerprint()
    assert all(hash_split(r.material_id) == r.split for r in mp_binary_elastic.records())


def test_fingerprint_tracks_content(mp20_mini):
    reference = mp20_mini.fingerprint()
    moved = mp20_mini.splits["train"][0]
    splits = mp20_mini.splits
    shuffled = DatasetBundle(
        "other name", {"test": splits["test"], "val": splits["val"], "train": splits["train"][::-1]}
    )
    assert shuffled.fingerprint() == reference
    changed = DatasetBundle(
        "x", {**splits, "train": splits["train"][1:], "val": [moved, *splits["val"]]}
    )
    assert changed.fingerprint() != reference


def test_summary_counts(mp_binary_elastic):
    summary = mp_binary_elastic.summary()
    assert summary["name"] == "mp-binary-elastic"
    assert summary["n_elements"] == {2: 3798}
    assert summary["skipped"] == {"# atoms > max_atoms=#": 155}


def test_cdvae_folder_deduplicates_across_splits(tmp_path):
    train = pd.read_csv(MP20_DIR / "train.csv.gz").head(4)
    train.to_csv(tmp_path / "train.csv", index=False)
    val = pd.read_csv(MP20_DIR / "val.csv.gz").head(2)
    duplicated = pd.concat([train.iloc[[1]], val, train.iloc[[1]]])
    duplicated.to_csv(tmp_path / "val.csv.gz", index=False)
    bundle = load_dataset(tmp_path)
    assert list(bundle.splits) == ["train", "val"]
    assert [len(bundle.records(s)) for s in bundle.splits] == [4, 2]
    duplicate_id = train["material_id"][1]
    assert [(s.row, s.reason) for s in bundle.skipped] == [
        (duplicate_id, f"duplicate of {duplicate_id} in split train"),
        (duplicate_id, f"duplicate of {duplicate_id} in split train"),
    ]
    with pytest.raises(DataError, match="has no split 'test'"):
        bundle.records("test")


def test_single_files_load_as_one_train_split(tmp_path):
    path = tmp_path / "some.csv.gz"
    pd.read_csv(MP20_DIR / "test.csv.gz").head(5).to_csv(path, index=False)
    bundle = load_dataset(str(path))
    assert list(bundle.splits) == ["train"] and len(bundle.records()) == 5
    assert bundle.records()[0].split == "train"


def test_unknown_names_and_paths_are_errors(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'mp21'.*mp-binary-elastic, mp20-mini"):
        load_dataset("mp21")
    with pytest.raises(DataError, match="neither train/val/test CDVAE CSVs nor"):
        load_dataset(tmp_path)
    (tmp_path / "data.parquet").write_text("")
    with pytest.raises(DataError, match="unknown file type"):
        load_dataset(tmp_path / "data.parquet")
