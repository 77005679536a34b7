"""The in-memory form of a dataset: one record per crystal, plus an account of rows left out.

Loaders never drop a row silently: a row that cannot become a ``CrystalRecord`` becomes a
``SkippedRow`` whose reason says what is wrong, so a user can see why a dataset is smaller than
its file.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

from pymatgen.core import Structure

#: Properties a record may carry, under their Materials Project names, with their units.
KNOWN_PROPERTIES: dict[str, str] = {
    "formation_energy_per_atom": "eV/atom",
    "band_gap": "eV",
    "e_above_hull": "eV/atom",
    "spacegroup_number": "",
    "bulk_modulus_vrh": "GPa",
    "shear_modulus_vrh": "GPa",
    "thermal_expansion_300k": "1/K",
}

#: Other spellings of known properties found in the wild (CDVAE CSVs, the MP API, matcalc).
PROPERTY_ALIASES: dict[str, str] = {
    "spacegroup.number": "spacegroup_number",
    "energy_above_hull": "e_above_hull",
    "thermal_expansion_300K": "thermal_expansion_300k",
}

_INTEGER_PROPERTIES = frozenset({"spacegroup_number"})

PropertyValue = float | int


@dataclass
class CrystalRecord:
    """One crystal of a dataset.

    Attributes
    ----------
    material_id
        The id in the source (e.g. ``mp-1234``); unique within a ``DatasetBundle``.
    structure
        The ordered structure, in the cell the source gave.
    properties
        Known property values only (see ``KNOWN_PROPERTIES`` for names and units); a property
        the source does not give is absent rather than NaN.
    split
        ``train``/``val``/``test`` or ``None`` when the source has no split.
    source
        Where the record came from (file name or dataset name), for provenance.
    """

    material_id: str
    structure: Structure
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    split: str | None = None
    source: str = ""

    @property
    def formula(self) -> str:
        """Reduced formula, e.g. ``Fe2O3``."""
        return self.structure.composition.reduced_formula

    @property
    def n_elements(self) -> int:
        """Number of distinct elements (2 for a binary), used to stratify statistics."""
        return len(self.structure.composition.elements)


@dataclass(frozen=True)
class SkippedRow:
    """A row of a source that did not become a record, and why.

    Attributes
    ----------
    source
        The file or dataset the row belongs to.
    row
        The row's id, or its index when it has no usable id.
    reason
        Human-readable and specific, e.g. ``24 atoms > max_atoms=20``.
    """

    source: str
    row: str
    reason: str


@dataclass
class LoadReport:
    """What a loader produced: the records and the rows it had to skip."""

    records: list[CrystalRecord] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)

    def extend(self, other: LoadReport) -> LoadReport:
        """Append another report's records and skipped rows (in place); return ``self``."""
        self.records.extend(other.records)
        self.skipped.extend(other.skipped)
        return self


def check_structure(structure: Structure, max_atoms: int | None) -> str | None:
    """Say why a structure cannot be used, or return ``None`` when it can.

    The text codec writes one element per site and a model is trained on cells of bounded
    size, so disordered sites and cells above ``max_atoms`` (``None``: no limit) are rejected.
    Site numbers in the reason are 0-based indices, as in ``structure[i]``.
    """
    if len(structure) == 0:
        return "structure has no atoms"
    for index, site in enumerate(structure):
        if not site.is_ordered:
            species = " ".join(f"{sp}{occu:g}" for sp, occu in site.species.items())
            return f"partial occupancy on site {index} ({species})"
    if max_atoms is not None and len(structure) > max_atoms:
        return f"{len(structure)} atoms > max_atoms={max_atoms}"
    return None


def clean_properties(raw: Mapping[str, object]) -> dict[str, PropertyValue]:
    """Keep the known properties of ``raw`` under their canonical names, as numbers.

    Aliases (``PROPERTY_ALIASES``) are renamed; unknown keys and missing values (``None``,
    NaN, blank text) are dropped, because a record holds only values that are known. Numeric
    text is accepted (a CSV column with one stray word is read as text). A value that is
    present but not a finite number raises ``ValueError`` naming the property, so the row is
    reported instead of carrying a wrong number.
    """
    cleaned: dict[str, PropertyValue] = {}
    for key, value in raw.items():
        name = PROPERTY_ALIASES.get(key, key)
        blank = value is None or (isinstance(value, str) and not value.strip())
        if name not in KNOWN_PROPERTIES or blank:
            continue
        try:
            if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
                raise ValueError
            number = float(value)
        except ValueError:
            raise ValueError(f"property {name} is not a number: {value!r}") from None
        if math.isnan(number):
            continue
        if math.isinf(number):
            raise ValueError(f"property {name} is not finite: {value!r}")
        if name in _INTEGER_PROPERTIES:
            if not number.is_integer():
                raise ValueError(f"property {name} is not an integer: {value!r}")
            cleaned[name] = int(number)
        else:
            cleaned[name] = number
    return cleaned
