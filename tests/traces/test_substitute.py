"""Substituted training crystals: charge balance kept, held-out formulas never produced."""

from __future__ import annotations

import random

from pymatgen.analysis.bond_valence import BVAnalyzer
from pymatgen.core import Lattice, Structure

from crystalreasoner.config import load_config
from crystalreasoner.data import CrystalRecord, DatasetBundle
from crystalreasoner.traces.builder import TraceConfig, build_trace_set
from crystalreasoner.traces.substitute import (
    SubstitutionConfig,
    is_substitute,
    substituted_structures,
    substitution_records,
)


def _rocksalt(a: str = "Na", b: str = "Cl", lattice: float = 5.64) -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]]
    ).get_primitive_structure()


def test_substitutions_keep_the_prototype_and_each_valence():
    nacl = _rocksalt()
    subs = substituted_structures(nacl, SubstitutionConfig(per_structure=3), random.Random(0))
    assert len(subs) == 3
    for sub in subs:
        assert sub.composition.reduced_formula != "NaCl"
        assert len(sub) == len(nacl)
        valences = sorted(BVAnalyzer().get_valences(sub))
        assert valences == [-1, 1]  # still a 1+/1- salt


def test_off_by_default_and_empty_for_intermetallics():
    assert substituted_structures(_rocksalt(), SubstitutionConfig(), random.Random(0)) == []
    cu3au = Structure.from_spacegroup(
        "Pm-3m", Lattice.cubic(3.75), ["Au", "Cu"], [[0, 0, 0], [0, 0.5, 0.5]]
    )
    assert substituted_structures(cu3au, SubstitutionConfig(per_structure=2), random.Random(0)) == []


def test_records_skip_held_out_formulas_and_repeats():
    parent = CrystalRecord("mp-nacl", _rocksalt(), {"band_gap": 5.0}, split="train")
    config = SubstitutionConfig(per_structure=20)
    everything = substitution_records([parent], config, seed=0, excluded_formulas=set())
    formulas = [r.formula for r in everything]
    assert len(formulas) == len(set(formulas)) > 3
    assert all(is_substitute(r) and r.properties == {} for r in everything)
    held_out = set(formulas[:2])
    kept = substitution_records([parent], config, seed=0, excluded_formulas=held_out)
    assert not held_out & {r.formula for r in kept}
    assert not is_substitute(parent)


def test_substitutes_join_the_training_split_only(cache):
    records = {
        "train": [CrystalRecord("mp-nacl", _rocksalt(), {"spacegroup_number": 225}, split="train")],
        "val": [CrystalRecord("mp-kbr", _rocksalt("K", "Br", 6.6), {"spacegroup_number": 225}, split="val")],
    }
    config = load_config(TraceConfig, "tiny-substituted", {"substitution.per_structure": 2, "n_jobs": 1})
    trace_set = build_trace_set(DatasetBundle("salts", records), config, cache)
    train_ids = {r.material_id for r in trace_set.splits["train"]}
    substitutes = train_ids - {"mp-nacl"}
    assert len(substitutes) == 2 and all(i.startswith("mp-nacl~sub") for i in substitutes)
    assert {r.material_id for r in trace_set.splits["val"]} == {"mp-kbr"}
    assert "KBr" not in {r.formula for r in trace_set.splits["train"]}
