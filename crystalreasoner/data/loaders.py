"""Read crystal structures from the file formats the pipeline meets, row by row.

Every loader returns a ``LoadReport``. A bad row (unparseable structure, disordered sites, too
many atoms, a property that is not a number) becomes a ``SkippedRow`` with a specific reason
and the batch goes on; only a file that cannot be opened at all raises ``DataError``. The
per-row handling lives once, in ``_collect``; each loader only says how to build a row.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from pymatgen.core import Structure

from crystalreasoner.data.records import (
    CrystalRecord,
    LoadReport,
    SkippedRow,
    check_structure,
    clean_properties,
)
from crystalreasoner.errors import DataError

#: Keys that may hold a material's id in JSON entries and extxyz ``atoms.info``, in priority order.
ID_KEYS = ("material_id", "mp_id", "task_id")

#: CDVAE CSV columns holding properties (renamed by ``clean_properties``); all optional.
CDVAE_PROPERTY_COLUMNS = (
    "formation_energy_per_atom",
    "band_gap",
    "e_above_hull",
    "spacegroup.number",
)

_MP_FIELDS = [
    "material_id",
    "structure",
    "formation_energy_per_atom",
    "band_gap",
    "energy_above_hull",
    "symmetry",
]

# What a row builder returns: material id, structure, raw properties (cleaned later).
_Row = tuple[str, Structure, Mapping[str, Any]]


class _Skip(Exception):
    """Raised by a row builder whose message is already the complete skip reason."""


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _collect(
    rows: Iterable[tuple[str, Callable[[], _Row]]],
    *,
    source: str,
    split: str | None,
    max_atoms: int | None,
    failure: str,
) -> LoadReport:
    """Build each row, recording a ``SkippedRow`` for every row that fails.

    Parameters
    ----------
    rows
        ``(row id, builder)`` pairs; a builder parses one row lazily so that its exception and
        warnings stay attached to that row.
    failure
        Prefix of the reason when a builder raises, e.g. ``unparseable CIF``. Parser warnings
        caught while building are appended, because pymatgen often explains a failed CIF only
        in a warning; warnings of rows that load are discarded.
    """
    report = LoadReport()
    for row_id, build in rows:
        reason = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                material_id, structure, raw = build()
            except _Skip as exc:
                reason = str(exc)
            except Exception as exc:  # any parser failure is a bad row, not a failed batch
                reason = f"{failure}: {_first_line(exc) or type(exc).__name__}"
                if caught:
                    reason += f" (warning: {_first_line(caught[0].message)})"
        if reason is None:
            reason = check_structure(structure, max_atoms)
        if reason is None:
            try:
                properties = clean_properties(raw)
            except ValueError as exc:
                reason = str(exc)
        if reason is None:
            report.records.append(CrystalRecord(material_id, structure, properties, split, source))
        else:
            report.skipped.append(SkippedRow(source, row_id, reason))
    return report


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"file not found: {path}")


def _stem(path: Path) -> str:
    """File name without its format and compression suffixes (``a.json.gz`` -> ``a``)."""
    name = path.name.removesuffix(".gz")
    return Path(name).stem


def _id_or_none(value: object) -> str | None:
    """An id as text, or None when it is missing (None, NaN, blank text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value).strip() or None


def _entry_id(entry: Mapping[str, Any]) -> str | None:
    """The first non-empty id among ``ID_KEYS``."""
    return next(filter(None, (_id_or_none(entry.get(key)) for key in ID_KEYS)), None)


def load_cdvae_csv(
    path: str | Path,
    *,
    split: str | None = None,
    max_atoms: int | None = 20,
    source: str | None = None,
) -> LoadReport:
    """Load a CDVAE-format CSV (``.csv`` or ``.csv.gz``), e.g. MP-20's ``train.csv``.

    Parameters
    ----------
    path
        CSV with at least ``material_id`` and ``cif`` columns; the property columns
        ``CDVAE_PROPERTY_COLUMNS`` are used when present.
    split
        Split name stored on every record.
    max_atoms
        Larger cells are skipped (``None``: no limit).
    source
        Provenance stored on records and skipped rows; defaults to the file name.
    """
    path = Path(path)
    _require_file(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, EOFError, ValueError) as exc:  # pandas parse errors are ValueErrors
        raise DataError(f"cannot read CSV file {path}: {_first_line(exc)}") from exc
    missing = {"material_id", "cif"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} is not a CDVAE CSV: missing column(s) {sorted(missing)}")
    property_columns = [column for column in CDVAE_PROPERTY_COLUMNS if column in frame.columns]

    def build(material_id: str | None, row: dict[str, Any]) -> _Row:
        if material_id is None:
            raise _Skip("missing material_id")
        if not isinstance(row["cif"], str) or not row["cif"].strip():
            raise _Skip("missing CIF")
        structure = Structure.from_str(row["cif"], fmt="cif")
        return material_id, structure, {column: row[column] for column in property_columns}

    rows = frame.to_dict("records")
    ids = [_id_or_none(row["material_id"]) for row in rows]
    return _collect(
        (
            (mid or f"row {index}", partial(build, mid, row))
            for index, (mid, row) in enumerate(zip(ids, rows))
        ),
        source=source or path.name,
        split=split,
        max_atoms=max_atoms,
        failure="unparseable CIF",
    )


def load_cif_folder(
    path: str | Path,
    *,
    max_atoms: int | None = 20,
    split: str | None = None,
    source: str | None = None,
) -> LoadReport:
    """Load every ``*.cif`` file of a folder (not recursive), in name order.

    The material id is the file stem; only the first data block of a CIF is read.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"CIF folder not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif" and p.is_file())

    def build(file: Path) -> _Row:
        return file.stem, Structure.from_str(file.read_text(), fmt="cif"), {}

    return _collect(
        ((file.stem, partial(build, file)) for file in files),
        source=source or path.name,
        split=split,
        max_atoms=max_atoms,
        failure="unparseable CIF",
    )


def _read_json(path: Path) -> Any:
    _require_file(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read JSON file {path}: {_first_line(exc)}") from exc


def load_pymatgen_json(
    path: str | Path,
    *,
    max_atoms: int | None = 20,
    split: str | None = None,
    source: str | None = None,
) -> LoadReport:
    """Load a JSON list (``.json`` or ``.json.gz``) of pymatgen structures.

    Each entry is either ``{"structure": <Structure.as_dict()>, "<id key>": ..., <properties>}``
    (id keys: ``ID_KEYS``; known properties and their aliases are kept) or a bare
    ``Structure.as_dict()``. An entry without an id gets ``<file stem>-<index>``.
    """
    path = Path(path)
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of entries, got a {type(entries).__name__}")
    stem = _stem(path)

    def build(material_id: str, entry: Any) -> _Row:
        if not isinstance(entry, dict):
            raise _Skip(f"entry is a JSON {type(entry).__name__}, not an object")
        if "structure" in entry:
            structure_dict, properties = entry["structure"], entry
        elif "lattice" in entry and "sites" in entry:
            structure_dict, properties = entry, {}
        else:
            raise _Skip("entry has no 'structure' key and is not a Structure dict")
        return material_id, Structure.from_dict(structure_dict), properties

    ids = [
        (_entry_id(entry) if isinstance(entry, dict) else None) or f"{stem}-{index}"
        for index, entry in enumerate(entries)
    ]
    return _collect(
        ((mid, partial(build, mid, entry)) for mid, entry in zip(ids, entries)),
        source=source or path.name,
        split=split,
        max_atoms=max_atoms,
        failure="invalid structure dict",
    )


def load_extxyz(
    path: str | Path,
    *,
    max_atoms: int | None = 20,
    split: str | None = None,
    source: str | None = None,
) -> LoadReport:
    """Load all frames of an extended-XYZ file with ASE.

    The id comes from ``atoms.info`` (``material_id`` or ``mp_id``), else ``<stem>-<index>``;
    known properties are taken from ``atoms.info``. ASE cannot resume after a corrupt frame, so
    a file it cannot parse raises ``DataError`` as a whole; frames that parse but are not 3D
    periodic crystals are skipped.
    """
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    path = Path(path)
    _require_file(path)
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types for malformed files
        raise DataError(f"cannot read extxyz file {path}: {_first_line(exc)}") from exc
    stem = _stem(path)

    def build(material_id: str, atoms: Any) -> _Row:
        if not atoms.pbc.all() or atoms.cell.rank < 3:
            raise _Skip(f"frame is not a 3D periodic crystal (pbc={atoms.pbc.tolist()})")
        return material_id, AseAtomsAdaptor.get_structure(atoms), atoms.info

    ids = [_entry_id(atoms.info) or f"{stem}-{index}" for index, atoms in enumerate(frames)]
    return _collect(
        ((mid, partial(build, mid, atoms)) for mid, atoms in zip(ids, frames)),
        source=source or path.name,
        split=split,
        max_atoms=max_atoms,
        failure="unconvertible frame",
    )


def _field(doc: Any, name: str) -> Any:
    """A field of an MP API document, whether it is a model object or a plain dict."""
    return doc.get(name) if isinstance(doc, Mapping) else getattr(doc, name, None)


def load_materials_project(
    *, api_key: str | None = None, max_atoms: int | None = 20, **search_kwargs: Any
) -> LoadReport:
    """Query the Materials Project summary endpoint (needs the optional ``mp-api`` package).

    Parameters
    ----------
    api_key
        Defaults to the ``MP_API_KEY`` environment variable.
    search_kwargs
        Passed to ``MPRester().materials.summary.search`` (e.g. ``elements=["Fe", "O"]``,
        ``num_sites=(1, 20)``).
    """
    try:
        from mp_api.client import MPRester
    except ImportError as exc:
        raise DataError(
            "load_materials_project needs the optional mp-api package: "
            "pip install crystalreasoner[mp]"
        ) from exc
    api_key = api_key or os.environ.get("MP_API_KEY")
    if not api_key:
        raise DataError("no Materials Project API key: pass api_key=... or set MP_API_KEY")
    try:
        with MPRester(api_key) as rester:
            docs = list(rester.materials.summary.search(fields=_MP_FIELDS, **search_kwargs))
    except Exception as exc:  # network, authentication and query errors alike
        raise DataError(f"Materials Project query failed: {_first_line(exc)}") from exc

    def build(material_id: str | None, doc: Any) -> _Row:
        if material_id is None:
            raise _Skip("missing material_id")
        structure = _field(doc, "structure")
        if isinstance(structure, Mapping):
            structure = Structure.from_dict(structure)
        if not isinstance(structure, Structure):
            raise _Skip("document has no structure")
        symmetry = _field(doc, "symmetry")
        properties = {
            name: _field(doc, name)
            for name in ("formation_energy_per_atom", "band_gap", "energy_above_hull")
        }
        properties["spacegroup_number"] = _field(symmetry, "number") if symmetry else None
        return material_id, structure, properties

    ids = [_id_or_none(_field(doc, "material_id")) for doc in docs]
    return _collect(
        (
            (mid or f"document {index}", partial(build, mid, doc))
            for index, (mid, doc) in enumerate(zip(ids, docs))
        ),
        source="materials-project",
        split=None,
        max_atoms=max_atoms,
        failure="invalid document",
    )
