"""Per-sample predicates (SPEC §5-§6). The reward and the report call these same functions.

Each takes a pymatgen object and returns a bool; a sample that does not parse fails them all.
"""

from __future__ import annotations

import itertools
import math
from functools import cache, reduce
from math import gcd

import numpy as np
from pymatgen.core import Composition, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.symmetry.groups import SpaceGroup

from crystalreasoner.traces.render import TraceClaims

#: SPEC §5 thresholds; the metric uses a 0.1 Å^3 volume floor, the reward 1 Å^3
MIN_LENGTH = 1.1  # Å, shortest lattice vector length
ANGLE_RANGE = (20.0, 160.0)  # degrees
MIN_DISTANCE = 0.5  # Å, any two atoms
SAME_SITE = 0.01  # Å: two atoms this close are one site written twice (reported as such)
METRIC_MIN_VOLUME = 0.1  # Å^3
REWARD_MIN_VOLUME = 1.0  # Å^3
#: a SMACT search over more oxidation-state combinations than this counts as not valid: the
#: search is exponential in the number of elements (MP-20 crystals need at most a few thousand)
MAX_OXIDATION_COMBINATIONS = 1_000_000
#: SPEC §6: space groups of generated structures are read at symprec 0.1, angle tolerance 5°
EVAL_SYMPREC, EVAL_ANGLE_TOLERANCE = 0.1, 5.0
TRACE_SYMPREC = 0.01  # traces are written at 0.01 first (SPEC §3)
#: a trace's volume claim holds within this relative difference
VOLUME_TOLERANCE = 0.1


def structural_problem(structure: Structure, min_volume: float = METRIC_MIN_VOLUME) -> str | None:
    """Why a structure is not structurally valid, None when it is: cell volume, lattice lengths and
    angles in range, no two atoms closer than 0.5 Å (the metric, the reward and the report's
    failure reasons all read this one check)."""
    lattice = structure.lattice
    if not np.isfinite(lattice.matrix).all() or lattice.volume < min_volume:
        return f"cell volume {lattice.volume:.3g} Å^3 below {min_volume} Å^3"
    if bad := [a for a in lattice.angles if not ANGLE_RANGE[0] <= a <= ANGLE_RANGE[1]]:
        return f"lattice angle {bad[0]:.1f}° outside {ANGLE_RANGE[0]:.0f}-{ANGLE_RANGE[1]:.0f}°"
    if (shortest := _shortest_vector(lattice)) < MIN_LENGTH:
        return f"lattice vector of {shortest:.2f} Å, shorter than {MIN_LENGTH} Å"
    if len(structure) == 1:
        return None
    distances = structure.distance_matrix
    np.fill_diagonal(distances, np.inf)
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    if distances[i, j] >= MIN_DISTANCE:
        return None
    what = "the same site written twice" if distances[i, j] < SAME_SITE else f"below {MIN_DISTANCE} Å"
    return (f"atoms {i} ({structure[i].species_string}) and {j} ({structure[j].species_string}) "
            f"{distances[i, j]:.2f} Å apart: {what}")


def _shortest_vector(lattice) -> float:
    """The shortest lattice vector, written or not (the LLL-reduced cell's): each atom has an
    image that far away however the cell is written, e.g. 1.2 Å edges at 20° give 0.42 Å."""
    return min(*lattice.abc, *lattice.get_lll_reduced_lattice().abc)


def is_structurally_valid(structure: Structure, min_volume: float = METRIC_MIN_VOLUME) -> bool:
    """Cell volume, lattice lengths and angles in range, and no two atoms closer than 0.5 Å."""
    return structural_problem(structure, min_volume) is None


@cache
def _smact_valid(symbols: tuple[str, ...], counts: tuple[int, ...]) -> bool:
    import smact
    from smact.screening import pauling_test

    if len(symbols) == 1:
        return True
    if all(symbol in smact.metals for symbol in symbols):  # alloys count as valid (CDVAE)
        return True
    elements = [smact.Element(symbol) for symbol in symbols]
    electronegativities = [e.pauling_eneg for e in elements]
    # smact 4's default lists are a narrower ICSD set; CDVAE used the smact 1.4 lists
    # (None for elements smact 1.4 gave no states, e.g. noble gases: no charge-neutral assignment)
    oxidation_lists = [e.oxidation_states_smact14 or [] for e in elements]
    if math.prod(len(states) for states in oxidation_lists) > MAX_OXIDATION_COMBINATIONS:
        return False  # generated junk with many elements: no real crystal needs this search
    threshold = max(counts)
    stoichs = [(c,) for c in counts]
    for states in itertools.product(*oxidation_lists):
        if not smact.neutral_ratios(states, stoichs=stoichs, threshold=threshold):
            continue
        try:
            if pauling_test(states, electronegativities):
                return True
        except TypeError:  # no electronegativity data: accepted, as in CDVAE
            return True
    return False


def is_smact_valid(composition: Composition) -> bool:
    """CDVAE-style SMACT check: charge neutral with electronegativity ordering.

    Counts are reduced by their gcd first, because smact 4's ``neutral_ratios`` drops ratios
    with a common divisor (STACK.md: done naively, real MP-20 data reads 39-66 % valid).
    """
    amounts = {el.symbol: int(round(n)) for el, n in composition.element_composition.items()}
    divisor = reduce(gcd, amounts.values())
    symbols = tuple(amounts)
    return _smact_valid(symbols, tuple(amounts[s] // divisor for s in symbols))


def composition_matches(structure: Structure, formula: str) -> bool:
    """The structure's reduced composition equals the requested formula's."""
    return structure.composition.reduced_composition.almost_equals(
        Composition(formula).reduced_composition
    )


def spacegroup_number(structure: Structure) -> int | None:
    """International number at the evaluation tolerances; None when spglib fails on the cell."""
    try:
        return SpacegroupAnalyzer(
            structure, symprec=EVAL_SYMPREC, angle_tolerance=EVAL_ANGLE_TOLERANCE
        ).get_space_group_number()
    except Exception:  # spglib raises several types on degenerate cells
        return None


def _symmetry_readings(structure: Structure) -> list[tuple[int, dict[str, list[int]]]]:
    """Space group and orbit sizes per element at the evaluation tolerance, then at the traces'
    tighter 0.01 (SPEC §3): a trace read at either tolerance is consistent with the structure."""
    readings = []
    for symprec in (EVAL_SYMPREC, TRACE_SYMPREC):
        try:
            analyzer = SpacegroupAnalyzer(structure, symprec=symprec, angle_tolerance=EVAL_ANGLE_TOLERANCE)
            symmetrized = analyzer.get_symmetrized_structure()
        except Exception:  # spglib raises several types on degenerate cells
            continue
        orbits: dict[str, list[int]] = {}
        for orbit in symmetrized.equivalent_indices:
            orbits.setdefault(structure[orbit[0]].specie.symbol, []).append(len(orbit))
        readings.append(
            (analyzer.get_space_group_number(), {el: sorted(sizes) for el, sizes in orbits.items()})
        )
    return readings


def _coordination_numbers(structure: Structure) -> dict[str, list[int]] | None:
    from crystalreasoner.traces.describers import crystalnn_tools

    crystal_nn = crystalnn_tools()[0]
    out: dict[str, list[int]] = {}
    try:
        for index, site in enumerate(structure):
            out.setdefault(site.specie.symbol, []).append(crystal_nn.get_cn(structure, index))
    except Exception:
        return None
    return {el: sorted(set(cns)) for el, cns in out.items()}


@cache
def crystal_system(spacegroup_number: int) -> str:
    """'cubic', 'hexagonal', ... of an international space-group number."""
    return SpaceGroup.from_int_number(spacegroup_number).crystal_system


def trace_consistency(
    structure: Structure, claims: TraceClaims, *, coordination: bool = False
) -> dict[str, float]:
    """Which claims of a trace the structure bears out (SPEC §5: the trace-consistency term).

    Only announced claims are scored: space group (and, coarser, its crystal system) and orbit
    multiplicities per element (at the evaluation tolerance or the traces' tighter one), cell
    composition (exactly, and as the overlap of element fractions, 1 - half their L1 distance),
    both space group and composition when both are announced,
    volume within ``VOLUME_TOLERANCE``, and with ``coordination`` the set of CrystalNN
    coordination numbers per element (slower). The graded scores give a small model's RL a
    signal long before its traces are exactly right.
    """
    scores: dict[str, float] = {}
    readings = _symmetry_readings(structure) if claims.spacegroup_number or claims.orbits else []
    if claims.spacegroup_number is not None:
        scores["trace_spacegroup"] = int(any(n == claims.spacegroup_number for n, _ in readings))
        claimed_system = crystal_system(claims.spacegroup_number) if 1 <= claims.spacegroup_number <= 230 else None
        scores["trace_crystal_system"] = int(any(crystal_system(n) == claimed_system for n, _ in readings))
    if claims.composition is not None:
        actual = {el.symbol: int(n) for el, n in structure.composition.element_composition.items()}
        scores["trace_composition"] = int(actual == claims.composition)
        claimed_total, actual_total = sum(claims.composition.values()), sum(actual.values())
        distance = sum(
            abs(actual.get(el, 0) / actual_total - claims.composition.get(el, 0) / max(claimed_total, 1))
            for el in {*actual, *claims.composition}
        )
        scores["trace_composition_overlap"] = 1 - distance / 2
    if "trace_spacegroup" in scores and "trace_composition" in scores:  # issue 5's share: both as announced
        scores["trace_spacegroup_and_composition"] = scores["trace_spacegroup"] * scores["trace_composition"]
    if claims.orbits:
        claimed = {el: sorted(sizes) for el, sizes in claims.orbits.items()}
        scores["trace_orbits"] = int(any(orbits == claimed for _, orbits in readings))
    if claims.volume is not None:
        scores["trace_volume"] = int(
            abs(structure.volume - claims.volume) <= VOLUME_TOLERANCE * claims.volume
        )
    if coordination and claims.coordination_numbers:
        claimed_cn = {el: sorted(set(cns)) for el, cns in claims.coordination_numbers.items()}
        scores["trace_coordination"] = int(_coordination_numbers(structure) == claimed_cn)
    return scores
