"""Named datasets: what ``load_dataset("mp20-mini")`` means, and loading a user's own data.

A ``DatasetBundle`` is the unit the rest of the pipeline consumes: records grouped by split,
unique by material id, with the rows that were left out and a fingerprint that identifies the
exact content (so a trained model can name the data it saw).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from crystalreasoner.data.loaders import (
    load_cdvae_csv,
    load_cif_folder,
    load_extxyz,
    load_pymatgen_json,
)
from crystalreasoner.data.records import CrystalRecord, LoadReport, SkippedRow
from crystalreasoner.errors import DataError
from crystalreasoner.hashing import sha256_json, structure_hash

#: Split names of CDVAE-style datasets, in order.
SPLITS = ("train", "val", "test")


@dataclass
class DatasetBundle:
    """A dataset ready for use: records per split and the rows that were skipped.

    Attributes
    ----------
    name
        Registry name, or the path it was loaded from.
    splits
        Split name -> records; material ids are unique across all splits.
    skipped
        Every row of the sources that is not among the records, with the reason.
    """

    name: str
    splits: dict[str, list[CrystalRecord]]
    skipped: list[SkippedRow] = field(default_factory=list)

    def records(self, split: str | None = None) -> list[CrystalRecord]:
        """Records of one split, or of all splits (in split order) when ``split`` is None."""
        if split is None:
            return [record for records in self.splits.values() for record in records]
        if split not in self.splits:
            known = list(self.splits)
            raise DataError(f"dataset {self.name} has no split {split!r}; it has {known}")
        return self.splits[split]

    def fingerprint(self) -> str:
        """sha256 of the sorted (split, material id, structure hash) triples.

        Independent of file paths, record order and dataset name; it changes when any record
        moves split, appears, disappears or changes structure.
        """
        triples = sorted(
            (split, record.material_id, structure_hash(record.structure))
            for split, records in self.splits.items()
            for record in records
        )
        return sha256_json(triples)

    def summary(self) -> dict[str, object]:
        """Counts for a quick look: records per split, per number of elements, skips per kind.

        Skip reasons are grouped by their kind: the text before any ``:`` or `` (`` with digits
        replaced by ``#``, so ``24 atoms > max_atoms=20`` and ``21 atoms > max_atoms=20`` count
        together.
        """
        return {
            "name": self.name,
            "records": {split: len(records) for split, records in self.splits.items()},
            "n_elements": dict(sorted(Counter(r.n_elements for r in self.records()).items())),
            "skipped": dict(Counter(_reason_kind(s.reason) for s in self.skipped).most_common()),
        }


def _reason_kind(reason: str) -> str:
    head = re.split(r":| \(", reason, maxsplit=1)[0]
    return re.sub(r"\d+", "#", head)


def hash_split(material_id: str) -> str:
    """Assign train/val/test (80/10/10 %) from a sha256 of the id.

    Unlike a seeded shuffle, this is stable across runs, machines and Python versions, and a
    record keeps its split when the dataset grows.
    """
    bucket = int(hashlib.sha256(material_id.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "val" if bucket < 90 else "test"


def _bundle(name: str, report: LoadReport, splits: Sequence[str]) -> DatasetBundle:
    """Group a report's records by their ``split``, keeping the first record of each id.

    Later occurrences of an id (in report order) join the skipped rows, so no structure is in
    two splits and no training example is counted twice.
    """
    bundle = DatasetBundle(name, {split: [] for split in splits}, list(report.skipped))
    first_split: dict[str, str] = {}
    for record in report.records:
        if record.material_id in first_split:
            reason = f"duplicate of {record.material_id} in split {first_split[record.material_id]}"
            bundle.skipped.append(SkippedRow(record.source, record.material_id, reason))
        else:
            first_split[record.material_id] = record.split
            bundle.splits[record.split].append(record)
    return bundle


def bundled_data_dir() -> Path:
    """Folder of the data shipped inside the package (see its README.md)."""
    return Path(str(files("crystalreasoner.data") / "bundled"))


def _cdvae_splits(folder: Path) -> dict[str, Path]:
    """The ``train``/``val``/``test`` CSVs (``.csv`` or ``.csv.gz``) present in a folder."""
    found = {}
    for split in SPLITS:
        for suffix in (".csv", ".csv.gz"):
            if (folder / f"{split}{suffix}").is_file():
                found[split] = folder / f"{split}{suffix}"
                break
    return found


def _load_cdvae_folder(name: str, folder: Path, max_atoms: int | None) -> DatasetBundle:
    paths = _cdvae_splits(folder)
    report = LoadReport()
    for split, path in paths.items():
        source = f"{name}/{path.name}"
        report.extend(load_cdvae_csv(path, split=split, max_atoms=max_atoms, source=source))
    return _bundle(name, report, list(paths))


def _load_mp20_mini(max_atoms: int | None) -> DatasetBundle:
    return _load_cdvae_folder("mp20-mini", bundled_data_dir() / "mp_20_subset", max_atoms)


def _load_mp_binary_elastic(max_atoms: int | None) -> DatasetBundle:
    path = bundled_data_dir() / "elasticity_thermal" / "mp-binary-pbe-elasticity-2025.1.json.gz"
    report = load_pymatgen_json(path, max_atoms=max_atoms, source="mp-binary-elastic")
    for record in report.records:
        record.split = hash_split(record.material_id)
    return _bundle("mp-binary-elastic", report, SPLITS)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: a description for listings and how to load it."""

    description: str
    load: Callable[[int | None], DatasetBundle]


DATASETS: dict[str, DatasetSpec] = {
    "mp20-mini": DatasetSpec(
        "1,112 real MP-20 rows (CDVAE CSVs, train/val/test 847/123/142); properties "
        "formation_energy_per_atom, band_gap, e_above_hull, spacegroup_number",
        _load_mp20_mini,
    ),
    "mp-binary-elastic": DatasetSpec(
        "3,953 MP binaries with bulk_modulus_vrh and shear_modulus_vrh (GPa), from matcalc; "
        "split 80/10/10 by a hash of the material id",
        _load_mp_binary_elastic,
    ),
}


def list_datasets() -> list[str]:
    """Names accepted by ``load_dataset`` (see ``DATASETS[name].description``)."""
    return sorted(DATASETS)


_FILE_LOADERS: dict[str, Callable[..., LoadReport]] = {
    ".csv": load_cdvae_csv,
    ".json": load_pymatgen_json,
    ".extxyz": load_extxyz,
    ".xyz": load_extxyz,
}


def load_dataset(name_or_path: str | Path, *, max_atoms: int | None = 20) -> DatasetBundle:
    """Load a registered dataset by name, or a user's data by path.

    A path may be:

    - a folder with ``train``/``val``/``test`` CDVAE CSVs (``.csv`` or ``.csv.gz``; any of
      them), e.g. a copy of CDVAE's ``data/mp_20`` -> those splits;
    - a folder of ``*.cif`` files -> one ``train`` split;
    - a ``.csv``/``.csv.gz`` (CDVAE columns), ``.json``/``.json.gz`` (pymatgen) or
      ``.extxyz``/``.xyz`` file -> one ``train`` split.

    Cells with more than ``max_atoms`` atoms are skipped (``None``: no limit).
    """
    if isinstance(name_or_path, str) and name_or_path in DATASETS:
        return DATASETS[name_or_path].load(max_atoms)
    path = Path(name_or_path)
    if path.is_dir():
        if _cdvae_splits(path):
            return _load_cdvae_folder(str(path), path, max_atoms)
        if any(p.suffix.lower() == ".cif" for p in path.iterdir()):
            report = load_cif_folder(path, max_atoms=max_atoms, split="train")
            return _bundle(str(path), report, ["train"])
        raise DataError(f"{path} holds neither train/val/test CDVAE CSVs nor *.cif files")
    if path.is_file():
        name = path.name.lower().removesuffix(".gz")
        for suffix, loader in _FILE_LOADERS.items():
            if name.endswith(suffix):
                report = loader(path, max_atoms=max_atoms, split="train")
                return _bundle(str(path), report, ["train"])
        raise DataError(f"{path}: unknown file type; expected one of {sorted(_FILE_LOADERS)}")
    raise DataError(
        f"unknown dataset {str(name_or_path)!r}: not a registered name "
        f"({', '.join(list_datasets())}) nor an existing path"
    )
