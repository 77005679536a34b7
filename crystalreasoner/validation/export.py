"""Validated structures out of the pipeline: CIF files, one extxyz file, and a table (CSV and,
when pyarrow is installed, Parquet) of their properties."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor


def export_structures(rows: Sequence[dict[str, Any]], structures: Sequence[Structure], out_dir: str | Path) -> list[Path]:
    """``cifs/<id>.cif``, ``structures.extxyz`` (properties in each frame's info) and
    ``candidates.csv`` (+ ``.parquet``); returns the files written."""
    from ase.io import write

    out = Path(out_dir)
    (out / "cifs").mkdir(parents=True, exist_ok=True)
    files = []
    frames = []
    for row, structure in zip(rows, structures):
        path = out / "cifs" / f"{row['id']}.cif"
        structure.to(filename=str(path))
        files.append(path)
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update({k: v for k, v in row.items() if isinstance(v, (int, float, str)) and v is not None})
        frames.append(atoms)
    extxyz = out / "structures.extxyz"
    write(extxyz, frames, format="extxyz")
    table = pd.DataFrame(list(rows))
    csv = out / "candidates.csv"
    table.to_csv(csv, index=False)
    files += [extxyz, csv]
    try:
        table.to_parquet(out / "candidates.parquet", index=False)
        files.append(out / "candidates.parquet")
    except ImportError:  # no parquet engine installed: the CSV holds the same table
        pass
    return files
