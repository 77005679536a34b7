"""A trace's stated space group, composition and orbit multiplicities agree with its structure.

Checked for every bundled structure, on the structure decoded back from the (augmented)
structure block, against spglib called directly rather than through the trace code.
"""

from __future__ import annotations

import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
import spglib

from crystalreasoner.data import decode_structure, load_dataset
from crystalreasoner.tasks import Task
from crystalreasoner.traces.analysis import analyze_structure
from crystalreasoner.traces.augment import AugmentConfig
from crystalreasoner.traces.builder import TraceConfig, render_record
from crystalreasoner.traces.render import parse_trace_claims

CONFIG = TraceConfig(
    describer="none",
    augment=AugmentConfig(cell="niggli", shift_origin=True, relabel_axes=True, atom_order="shuffled"),
)


def _disagreements(record) -> list[str]:
    """Empty when the rendered trace of ``record`` agrees with its own structure block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = analyze_structure(record.structure, "none")
        text = render_record(record, analysis, Task.CONDITIONAL, 0, CONFIG, augment=True)
        text = text.completion[0]["content"]
        claims = parse_trace_claims(text)
        structure = decode_structure(text)
    cell = (
        structure.lattice.matrix,
        structure.frac_coords,
        [site.specie.Z for site in structure],
    )
    # the same tolerances as the trace (pymatgen's SpacegroupAnalyzer: angle tolerance 5 degrees)
    dataset = spglib.get_symmetry_dataset(cell, symprec=analysis.symprec, angle_tolerance=5)
    problems = []
    if dataset.number != claims.spacegroup_number:
        problems.append(f"space group {claims.spacegroup_number} stated, spglib {dataset.number}")
    composition = dict(Counter(site.specie.symbol for site in structure))
    if composition != claims.composition:
        problems.append(f"composition {claims.composition} stated, block has {composition}")
    orbit_sizes = Counter(dataset.equivalent_atoms)
    for element in composition:
        actual = sorted(
            orbit_sizes[rep]
            for rep in orbit_sizes
            if structure[int(rep)].specie.symbol == element
        )
        if sorted(claims.orbits.get(element, [])) != actual:
            problems.append(f"{element} orbits {claims.orbits.get(element)} stated, spglib {actual}")
    return [f"{record.material_id}: {p}" for p in problems]


@pytest.mark.parametrize("name", ["mp20-mini", "mp-binary-elastic"])
def test_every_bundled_trace_states_its_own_symmetry(name):
    records = load_dataset(name, max_atoms=None).records()
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        problems = [p for found in pool.map(_disagreements, records, chunksize=32) for p in found]
    assert not problems, f"{len(problems)} of {len(records)} disagree, e.g. {problems[:5]}"


def test_disagreement_is_detected():
    """The check itself can fail: a trace rendered for another structure disagrees."""
    records = load_dataset("mp20-mini").records("test")
    cubic = next(r for r in records if analyze_structure(r.structure, "none").spacegroup_number == 225)
    other = next(r for r in records if analyze_structure(r.structure, "none").spacegroup_number < 100)
    analysis = analyze_structure(cubic.structure, "none")
    wrong = render_record(other, analysis, Task.CONDITIONAL, 0, CONFIG, augment=True)
    claims = parse_trace_claims(wrong.completion[0]["content"])
    structure = decode_structure(wrong.completion[0]["content"])
    assert claims.spacegroup_number == 225
    assert spglib.get_symmetry_dataset(
        (structure.lattice.matrix, structure.frac_coords, [s.specie.Z for s in structure]), 0.01
    ).number != 225


def test_claims_parser_never_raises_on_malformed_numbers():
    from crystalreasoner.traces.render import parse_trace_claims

    claims = parse_trace_claims("Volume: 188.79.89 Å^3 (1 Å^3/atom)\nSpace group: P1 (No. 99999999999999999999)")
    assert claims.volume is None and claims.spacegroup_number == 99999999999999999999
