import gzip
import json
import sys
import types

import ase.io
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter

from crystalreasoner.data import (
    bundled_data_dir,
    load_cdvae_csv,
    load_cif_folder,
    load_dataset,
    load_extxyz,
    load_materials_project,
    load_pymatgen_json,
)
from crystalreasoner.errors import DataError

TRAIN_CSV = bundled_data_dir() / "mp_20_subset" / "train.csv.gz"


@pytest.fixture(scope="module")
def good_rows() -> pd.DataFrame:
    return pd.read_csv(TRAIN_CSV).head(3)


def _reasons(report) -> dict[str, str]:
    return {row.row: row.reason for row in report.skipped}


def _bad_csv_rows(good_rows: pd.DataFrame) -> pd.DataFrame:
    """Three good rows followed by one bad row of each kind."""
    template = good_rows.iloc[0]
    disordered = Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    too_big = Structure.from_str(template["cif"], fmt="cif") * (2, 2, 2)
    bad = {
        "bad-cif": "data_broken\n_cell_length_a 3\nthis is not a CIF",
        "bad-occupancy": str(CifWriter(disordered)),
        "bad-size": str(CifWriter(too_big)),
    }
    rows = [good_rows]
    for material_id, cif in bad.items():
        rows.append(template.to_frame().T.assign(material_id=material_id, cif=cif))
    rows.append(template.to_frame().T.assign(material_id="bad-gap", band_gap="n.a."))
    return pd.concat(rows, ignore_index=True)


def test_cdvae_csv_reports_each_bad_row_and_keeps_the_good_ones(tmp_path, good_rows):
    path = tmp_path / "train.csv"
    _bad_csv_rows(good_rows).to_csv(path)
    report = load_cdvae_csv(path, split="train")

    assert [r.material_id for r in report.records] == list(good_rows["material_id"])
    assert all(r.split == "train" and r.source == "train.csv" for r in report.records)
    reasons = _reasons(report)
    assert set(reasons) == {"bad-cif", "bad-occupancy", "bad-size", "bad-gap"}
    assert reasons["bad-cif"].startswith("unparseable CIF: ")
    assert reasons["bad-occupancy"] == "partial occupancy on site 0 (Fe0.5 Co0.5)"
    n_atoms = 8 * len(Structure.from_str(good_rows["cif"][0], fmt="cif"))
    assert reasons["bad-size"] == f"{n_atoms} atoms > max_atoms=20"
    assert reasons["bad-gap"] == "property band_gap is not a number: 'n.a.'"


def test_cdvae_csv_reads_properties_and_tolerates_missing_columns(tmp_path, good_rows):
    full = tmp_path / "full.csv"
    good_rows.to_csv(full, index=False)
    record = load_cdvae_csv(full).records[0]
    row = good_rows.iloc[0]
    assert record.material_id == row["material_id"]
    assert record.properties == {
        "formation_energy_per_atom": row["formation_energy_per_atom"],
        "band_gap": row["band_gap"],
        "e_above_hull": row["e_above_hull"],
        "spacegroup_number": row["spacegroup.number"],
    }
    path = tmp_path / "minimal.csv.gz"
    good_rows[["material_id", "cif", "band_gap"]].to_csv(path, index=False)
    report = load_cdvae_csv(path, source="mine")
    assert len(report.records) == 3 and not report.skipped
    assert report.records[0].properties == {"band_gap": row["band_gap"]}
    assert report.records[0].source == "mine"


def test_cdvae_csv_row_without_id_is_named_by_index(tmp_path, good_rows):
    rows = good_rows.copy()
    rows.loc[1, "material_id"] = None
    path = tmp_path / "ids.csv"
    rows.to_csv(path, index=False)
    assert _reasons(load_cdvae_csv(path)) == {"row 1": "missing material_id"}


def test_container_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv"):
        load_cdvae_csv(missing)
    no_cif = tmp_path / "no_cif.csv"
    no_cif.write_text("material_id,band_gap\nmp-1,0.0\n")
    with pytest.raises(DataError, match=r"no_cif.csv is not a CDVAE CSV: missing column"):
        load_cdvae_csv(no_cif)
    corrupt = tmp_path / "corrupt.json.gz"
    corrupt.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="corrupt.json.gz"):
        load_pymatgen_json(corrupt)
    with pytest.raises(DataError, match="CIF folder not found"):
        load_cif_folder(tmp_path / "missing_dir")
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("3\nnot extxyz\nH 0 0\n")
    with pytest.raises(DataError, match="garbage.extxyz"):
        load_extxyz(garbage)


def _structures(n: int) -> list[Structure]:
    return [Structure.from_str(cif, fmt="cif") for cif in pd.read_csv(TRAIN_CSV, nrows=n)["cif"]]


def test_cif_folder(tmp_path):
    for index, structure in enumerate(_structures(2)):
        CifWriter(structure).write_file(tmp_path / f"s{index}.cif")
    (tmp_path / "broken.cif").write_text("data_x\nnot a cif at all\n")
    (tmp_path / "notes.txt").write_text("ignored")
    report = load_cif_folder(tmp_path)
    assert [r.material_id for r in report.records] == ["s0", "s1"]
    (skipped,) = report.skipped
    assert skipped.row == "broken" and skipped.reason.startswith("unparseable CIF: ")
    bundle = load_dataset(tmp_path)
    assert list(bundle.splits) == ["train"] and len(bundle.records("train")) == 2


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_pymatgen_json(tmp_path, suffix):
    first, second = _structures(2)
    entries = [
        {"mp_id": "mp-1", "structure": first.as_dict(), "bulk_modulus_vrh": 101.5, "formula": "X"},
        {"task_id": "mp-2", "structure": second.as_dict(), "energy_above_hull": 0.1},
        second.as_dict(),
        {"material_id": "mp-4", "structure": {"lattice": "nonsense"}},
        ["not", "an", "object"],
        {"material_id": "mp-6"},
    ]
    path = tmp_path / f"entries{suffix}"
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "wt") as handle:
        json.dump(entries, handle)
    report = load_pymatgen_json(path)
    assert [(r.material_id, r.properties) for r in report.records] == [
        ("mp-1", {"bulk_modulus_vrh": 101.5}),
        ("mp-2", {"e_above_hull": 0.1}),
        ("entries-2", {}),
    ]
    assert report.records[0].structure == first
    reasons = _reasons(report)
    assert reasons["mp-4"].startswith("invalid structure dict: ")
    assert reasons["entries-4"] == "entry is a JSON list, not an object"
    assert reasons["mp-6"] == "entry has no 'structure' key and is not a Structure dict"


def test_pymatgen_json_must_hold_a_list(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"structure": {}}))
    with pytest.raises(DataError, match="expected a JSON list of entries, got a dict"):
        load_pymatgen_json(path)


def test_extxyz(tmp_path):
    first, second = _structures(2)
    frames = [AseAtomsAdaptor.get_atoms(s) for s in (first, second, first * (3, 3, 3))]
    frames[0].info.update(material_id="mp-a", band_gap=1.25)
    molecule = ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    path = tmp_path / "frames.extxyz"
    ase.io.write(path, [*frames, molecule], format="extxyz")
    report = load_extxyz(path)
    assert [(r.material_id, r.properties) for r in report.records] == [
        ("mp-a", {"band_gap": 1.25}),
        ("frames-1", {}),
    ]
    assert report.records[0].structure.matches(first)
    assert _reasons(report) == {
        "frames-2": f"{27 * len(first)} atoms > max_atoms=20",
        "frames-3": "frame is not a 3D periodic crystal (pbc=[False, False, False])",
    }
    assert len(load_extxyz(path, max_atoms=None).records) == 3


def _fake_mp_api(monkeypatch, docs):
    """Install a stand-in ``mp_api.client`` whose MPRester returns ``docs``."""

    class FakeRester:
        def __init__(self, api_key):
            self.materials = types.SimpleNamespace(summary=self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def search(self, fields, **kwargs):
            assert "symmetry" in fields and "energy_above_hull" in fields
            return docs

    client = types.ModuleType("mp_api.client")
    client.MPRester = FakeRester
    monkeypatch.setitem(sys.modules, "mp_api", types.ModuleType("mp_api"))
    monkeypatch.setitem(sys.modules, "mp_api.client", client)


def test_materials_project_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mp_api", None)
    monkeypatch.setitem(sys.modules, "mp_api.client", None)
    with pytest.raises(DataError, match=r"pip install crystalreasoner\[mp\]"):
        load_materials_project(api_key="key")


def test_materials_project_without_a_key_says_how_to_set_it(monkeypatch):
    _fake_mp_api(monkeypatch, [])
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(DataError, match="set MP_API_KEY"):
        load_materials_project()


def test_materials_project_maps_fields(monkeypatch):
    (structure,) = _structures(1)
    doc = types.SimpleNamespace(
        material_id="mp-9",
        structure=structure,
        formation_energy_per_atom=-1.0,
        band_gap=0.5,
        energy_above_hull=0.0,
        symmetry=types.SimpleNamespace(number=139),
    )
    _fake_mp_api(monkeypatch, [doc])
    monkeypatch.setenv("MP_API_KEY", "key")
    (record,) = load_materials_project(elements=["Lu"]).records
    assert record.material_id == "mp-9"
    assert record.properties == {
        "formation_energy_per_atom": -1.0,
        "band_gap": 0.5,
        "e_above_hull": 0.0,
        "spacegroup_number": 139,
    }
