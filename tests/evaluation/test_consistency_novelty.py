"""Trace-consistency checks and structure-matcher uniqueness/novelty on real structures."""

from pymatgen.core import Lattice, Structure

from crystalreasoner.data import load_dataset
from crystalreasoner.evaluation.checks import spacegroup_number, trace_consistency
from crystalreasoner.evaluation.novelty import StructureIndex, novelty, uniqueness
from crystalreasoner.traces.analysis import analyze_structure
from crystalreasoner.traces.render import TraceClaims, parse_trace_claims, render_thinking


def _rocksalt(a="Na", b="Cl", lattice=5.64):
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_a_real_trace_is_consistent_with_its_own_structure_and_not_with_another():
    import random

    structure = load_dataset("mp20-mini").records("val")[1].structure  # not rocksalt-like
    text = render_thinking(analyze_structure(structure, "crystalnn"), {}, random.Random(0), describer="crystalnn")
    claims = parse_trace_claims(text)
    own = trace_consistency(structure, claims, coordination=True)
    assert own == dict.fromkeys(
        ["trace_spacegroup", "trace_crystal_system", "trace_composition", "trace_composition_overlap",
         "trace_spacegroup_and_composition", "trace_orbits", "trace_volume", "trace_coordination"], 1
    )
    other = trace_consistency(_rocksalt(), claims, coordination=True)
    exact = ("trace_spacegroup", "trace_composition", "trace_spacegroup_and_composition", "trace_orbits",
             "trace_volume", "trace_coordination")
    assert {other[name] for name in exact} == {0}
    assert other["trace_composition_overlap"] < 0.5  # mostly other elements


def test_only_announced_claims_are_scored():
    nacl = _rocksalt()
    assert trace_consistency(nacl, TraceClaims()) == {}
    scores = trace_consistency(nacl, TraceClaims(spacegroup_number=225, volume=nacl.volume * 1.2))
    assert scores == {"trace_spacegroup": 1, "trace_crystal_system": 1, "trace_volume": 0}
    fcc_claim = trace_consistency(nacl, TraceClaims(spacegroup_number=221, composition={"Na": 1, "Cl": 3}))
    # Pm-3m is cubic too; a quarter of the atoms would have to change element
    assert fcc_claim == {"trace_spacegroup": 0, "trace_crystal_system": 1, "trace_composition": 0,
                         "trace_composition_overlap": 0.75, "trace_spacegroup_and_composition": 0}
    assert spacegroup_number(nacl) == 225


def test_uniqueness_and_novelty_see_through_cell_choice():
    nacl, kbr = _rocksalt(), _rocksalt("K", "Br", 6.6)
    same_nacl = nacl.get_primitive_structure()
    same_nacl.perturb(0.01)
    batch = [nacl, None, same_nacl, kbr]
    assert uniqueness(batch) == [1, None, 0, 1]
    reference = StructureIndex([kbr])
    assert novelty(batch, reference) == [1, None, 1, 0]
    assert len(reference) == 1
