"""Everything a thinking trace says about one structure, computed once and cached.

The analysis depends only on the structure and the describer, not on the seed, the prompt or
the augmentation, so traces can be re-rendered cheaply from cached analyses.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pymatgen.analysis.bond_valence import BVAnalyzer
from pymatgen.core import Element, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystalreasoner.traces.describers import (
    Describer,
    SiteEnvironment,
    robocrys_description,
    site_environments,
)

#: bump when the content of :class:`StructureAnalysis` changes, so cached entries are recomputed
ANALYSIS_VERSION = 1
SYMPREC_LADDER = (0.01, 0.1)  # SPEC §3: symprec 0.01, falling back to 0.1


@dataclass
class StructureAnalysis:
    """Symmetry, oxidation states, coordination and volume of one structure (JSON-serialisable)."""

    spacegroup_symbol: str
    spacegroup_number: int
    crystal_system: str
    symprec: float
    composition: dict[str, int]  # element -> atoms in the cell
    elements: list[str]  # by increasing Pauling electronegativity
    orbits: dict[str, list[int]]  # element -> multiplicity of each orbit in the cell
    wyckoff: dict[str, list[str]]  # element -> Wyckoff symbol of each orbit (conventional setting)
    conventional_lattice: list[float]  # a, b, c (Å), alpha, beta, gamma (degrees)
    oxidation_states: dict[str, list[int]] | None  # element -> valence of each orbit (BVAnalyzer)
    volume: float  # Å^3
    min_distance: float  # Å, shortest interatomic distance (periodic)
    environments: list[dict[str, Any]] = field(default_factory=list)  # SiteEnvironment fields
    robocrys_text: str | None = None

    def signature(self) -> tuple[int, list[int]]:
        """Comparable with :func:`symmetry_signature` of a structure written for this trace."""
        return self.spacegroup_number, sorted(m for mults in self.orbits.values() for m in mults)

    @property
    def site_environments(self) -> list[SiteEnvironment]:
        return [SiteEnvironment(**env) for env in self.environments]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StructureAnalysis:
        return cls(**data)


def symmetry_analyzer(structure: Structure) -> tuple[SpacegroupAnalyzer, float]:
    """A working spglib analysis at the first tolerance of the ladder that succeeds."""
    error: Exception | None = None
    for symprec in SYMPREC_LADDER:
        try:
            analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
            analyzer.get_space_group_number()
            return analyzer, symprec
        except Exception as exc:  # spglib raises several types on degenerate cells
            error = exc
    raise ValueError(f"spglib found no symmetry at symprec {SYMPREC_LADDER}: {error}")


def symmetry_signature(structure: Structure, symprec: float) -> tuple[int, list[int]]:
    """Space-group number and sorted orbit sizes at ``symprec``: what a trace claims."""
    dataset = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset()
    return dataset.number, sorted(Counter(dataset.equivalent_atoms.tolist()).values())


def min_interatomic_distance(structure: Structure) -> float:
    """Shortest periodic distance between two atoms (Å); inf for a single atom in a big cell."""
    if len(structure) == 1:
        return float(min(structure.lattice.abc))
    matrix = structure.distance_matrix
    np.fill_diagonal(matrix, np.inf)
    # a lone atom's periodic images are a lattice vector away
    return float(min(matrix.min(), min(structure.lattice.abc)))


def analyze_structure(structure: Structure, describer: Describer = "crystalnn") -> StructureAnalysis:
    """Compute the trace facts for ``structure`` (the expensive, cacheable part)."""
    analyzer, symprec = symmetry_analyzer(structure)
    symmetrized = analyzer.get_symmetrized_structure()
    orbit_indices = sorted(symmetrized.equivalent_indices, key=lambda idx: idx[0])
    index_to_wyckoff = {
        tuple(idx): symbol
        for idx, symbol in zip(symmetrized.equivalent_indices, symmetrized.wyckoff_symbols)
    }
    composition = Counter(site.specie.symbol for site in structure)
    elements = sorted(composition, key=lambda el: (Element(el).X, el))

    orbits: dict[str, list[int]] = {el: [] for el in elements}
    wyckoff: dict[str, list[str]] = {el: [] for el in elements}
    for idx in orbit_indices:
        element = structure[idx[0]].specie.symbol
        orbits[element].append(len(idx))
        wyckoff[element].append(index_to_wyckoff[tuple(idx)])

    oxidation_states = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valences = BVAnalyzer().get_valences(structure)
        oxidation_states = {el: [] for el in elements}
        for idx in orbit_indices:
            oxidation_states[structure[idx[0]].specie.symbol].append(int(valences[idx[0]]))
    except ValueError:  # BVAnalyzer finds no charge-balanced assignment: omitted (SPEC §3)
        pass

    conventional = analyzer.get_conventional_standard_structure().lattice
    analysis = StructureAnalysis(
        spacegroup_symbol=analyzer.get_space_group_symbol(),
        spacegroup_number=analyzer.get_space_group_number(),
        crystal_system=analyzer.get_crystal_system(),
        symprec=symprec,
        composition=dict(composition),
        elements=elements,
        orbits=orbits,
        wyckoff=wyckoff,
        conventional_lattice=[round(x, 4) for x in (*conventional.abc, *conventional.angles)],
        oxidation_states=oxidation_states,
        volume=round(structure.volume, 4),
        min_distance=round(min_interatomic_distance(structure), 4),
    )
    if describer == "robocrys":
        analysis.robocrys_text = robocrys_description(structure)
    if describer != "none":
        # CrystalNN environments are kept for robocrys too: the consistency check reads them
        envs = site_environments(structure, orbit_indices)
        analysis.environments = [asdict(env) for env in envs]
    return analysis
