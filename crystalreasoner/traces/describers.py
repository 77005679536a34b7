"""Coordination describers: turn a structure's local environments into trace text.

Two back ends (SPEC §3): Robocrystallographer, as in the paper (1-4 s per structure), and a
compact CrystalNN-based describer (~0.1 s per structure). Both report, per symmetry orbit, the
coordination number that the trace-consistency check later compares with generated structures.
``none`` leaves the coordination block out (an ablation, and a fast path for symmetry checks).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pymatgen.core import Structure

Describer = Literal["crystalnn", "robocrys", "none"]

#: below this order-parameter value a site gets no geometry name, only "N-coordinate"
MIN_GEOMETRY_LIKENESS = 0.5


@dataclass(frozen=True)
class SiteEnvironment:
    """Local environment of one symmetry orbit (represented by its first site)."""

    label: str  # e.g. "Ti(1)": element and orbit number within that element
    element: str
    coordination_number: int
    geometry: str  # e.g. "octahedral", or "7-coordinate" when no ideal shape fits
    neighbors: dict[str, int]  # neighbour element -> count
    bond_min: float  # Å
    bond_max: float  # Å

    def sentence(self) -> str:
        shape = self.geometry if self.geometry.endswith("coordinate") else (
            f"{self.coordination_number}-coordinate {self.geometry}"
        )
        partners = ", ".join(f"{n} {el}" for el, n in sorted(self.neighbors.items()))
        bonds = (
            f"{self.bond_min:.2f} Å" if abs(self.bond_max - self.bond_min) < 0.005
            else f"{self.bond_min:.2f}-{self.bond_max:.2f} Å"
        )
        return f"{self.label}: {shape}, bonded to {partners or 'nothing'}; bond lengths {bonds}."


@cache
def crystalnn_tools():
    # matminer's import is slow; load it once per process, only when this describer is used
    from matminer.featurizers.site import CrystalNNFingerprint
    from pymatgen.analysis.local_env import CrystalNN

    fingerprint = CrystalNNFingerprint.from_preset("ops")
    return CrystalNN(), fingerprint, fingerprint.feature_labels()


def site_environments(structure: Structure, orbits: list[list[int]]) -> list[SiteEnvironment]:
    """CrystalNN neighbours and the best-matching ideal polyhedron for each orbit."""
    crystal_nn, fingerprint, labels = crystalnn_tools()
    per_element: Counter[str] = Counter()
    environments = []
    for orbit in orbits:
        index = orbit[0]
        element = structure[index].specie.symbol
        per_element[element] += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            neighbors = crystal_nn.get_nn_info(structure, index)
            ops = fingerprint.featurize(structure, index)
        cn = len(neighbors)
        shapes = [
            (value, name.rsplit(" ", 1)[0])
            for name, value in zip(labels, ops)
            if name.endswith(f"CN_{cn}") and not name.startswith(("wt", "q"))
        ]
        likeness, shape = max(shapes, default=(0.0, ""))
        distances = [structure[index].distance(n["site"]) for n in neighbors] or [0.0]
        environments.append(
            SiteEnvironment(
                label=f"{element}({per_element[element]})",
                element=element,
                coordination_number=cn,
                geometry=shape if likeness >= MIN_GEOMETRY_LIKENESS else f"{cn}-coordinate",
                neighbors=dict(Counter(n["site"].specie.symbol for n in neighbors)),
                bond_min=round(min(distances), 4),
                bond_max=round(max(distances), 4),
            )
        )
    return environments


_NUMPY_SCALAR = re.compile(r"np\.(?:int|float)\d*\((-?[\d.]+)\)")


def robocrys_description(structure: Structure) -> str:
    """Robocrystallographer's text, as the paper's traces use it.

    robocrys 0.2.13 prints numpy 2 scalars as ``np.int64(1)`` in Miller indices; those are
    rewritten to plain numbers.
    """
    from robocrys import StructureCondenser, StructureDescriber

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        condensed = StructureCondenser().condense_structure(structure)
        text = StructureDescriber().describe(condensed)
    return _NUMPY_SCALAR.sub(r"\1", text)
