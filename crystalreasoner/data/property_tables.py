"""Composition-only property tables: targets for prompts where no structure is known.

RL needs only prompts and their targets, so a specialist can train on properties that no
bundled crystal carries: the thermal-expansion specialist's CTE targets come from AFLOW's
AGL table (formula + 300 K volumetric CTE), which has compositions but no structures.
A user's own table is a CSV with a ``formula`` column, property columns under their known
names (``KNOWN_PROPERTIES`` or an alias) and an optional ``split`` column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pymatgen.core import Composition, Element

from crystalreasoner.data.datasets import SPLITS, bundled_data_dir, hash_split
from crystalreasoner.data.records import KNOWN_PROPERTIES, PROPERTY_ALIASES
from crystalreasoner.errors import DataError


@dataclass(frozen=True)
class PropertyRow:
    """One composition with its property values (stored units, see ``KNOWN_PROPERTIES``)."""

    formula: str
    properties: dict[str, float]
    split: str


#: name -> (file under the bundled data, column renames, split column)
BUNDLED_TABLES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "aflow-thermal-expansion": (
        "elasticity_thermal/aflow__agl_thermal_expansion_300K.csv.gz",
        {"thermal_expansion_300K_per_K": "thermal_expansion_300k"},
        "crabnet_split",
    ),
}


def load_property_table(name_or_path: str | Path) -> list[PropertyRow]:
    """Rows of a bundled table (``aflow-thermal-expansion``) or of a user's CSV.

    Rows whose formula does not parse or whose values are not finite are errors named with
    their line, not dropped silently.
    """
    if str(name_or_path) in BUNDLED_TABLES:
        relative, renames, split_column = BUNDLED_TABLES[str(name_or_path)]
        path = bundled_data_dir() / relative
    else:
        path, renames, split_column = Path(name_or_path), {}, "split"
        if not path.is_file():
            raise DataError(
                f"no property table {str(name_or_path)!r}: not a bundled name ({', '.join(BUNDLED_TABLES)}) "
                "nor a CSV file"
            )
    frame = pd.read_csv(path).rename(columns={**PROPERTY_ALIASES, **renames})
    if "formula" not in frame.columns:
        raise DataError(f"{path}: a property table needs a 'formula' column, found {list(frame.columns)}")
    columns = [c for c in frame.columns if c in KNOWN_PROPERTIES]
    if not columns:
        raise DataError(f"{path}: no known property column (known: {', '.join(KNOWN_PROPERTIES)})")
    rows = []
    for line, record in enumerate(frame.to_dict("records"), start=2):
        try:
            composition = Composition(record["formula"])
            if not all(isinstance(el, Element) for el in composition.elements):
                raise ValueError("not all of its symbols are elements")
        except (ValueError, KeyError) as exc:
            raise DataError(f"{path}, line {line}: formula {record['formula']!r} does not parse ({exc})") from exc
        values = {c: float(record[c]) for c in columns if not pd.isna(record[c])}
        if not all(math.isfinite(v) for v in values.values()):
            raise DataError(f"{path}, line {line}: non-finite value in {values}")
        split = record.get(split_column)
        formula = composition.reduced_formula
        rows.append(PropertyRow(formula, values, split if split in SPLITS else hash_split(formula)))
    return rows
