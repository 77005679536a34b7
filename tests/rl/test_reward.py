"""The SPEC §5 reward on hand-made completions, with exact expected values."""

import pytest

from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.rl.reward import RewardConfig, energy_score, gate, group_rewards

BLOCK = "<CIF>\nP1\n5 5 5\n90 90 90\nMg 1 0 0 0\nIn 1 0.5 0.5 0.5\nIn 1 0.5 0 0\n</CIF>"
TRACE = "<think>\nSpace group: Pm-3m (No. 221), cubic crystal system.\nCell composition: Mg1 In2 (3 atoms).\n</think>\n"


def _sample(text, formula="MgIn2", task="conditional", targets=None, prompt="p"):
    return parse_sample(GeneratedSample(0, 0, prompt, formula, None, task, targets or {}, text, "stop", 1))


def test_energy_score_and_gate():
    assert energy_score(None) == 0 and energy_score(0.0) == 1.0 and energy_score(0.4) == pytest.approx(0.8)
    assert energy_score(1.0) == pytest.approx(0.5) and energy_score(2.0) == pytest.approx(0.25)
    assert energy_score(-0.2) == pytest.approx(1.1)  # below the hull: kept, not clipped
    assert gate(BLOCK + "\n") == 1 and gate(BLOCK + " and more") == 0 and gate(BLOCK[:-6]) == 0


def test_validity_terms_exactly():
    config = RewardConfig(mlip=None)
    valid, wrong_formula, overlapping, unclosed, garbage = group_rewards([
        _sample(BLOCK),
        _sample(BLOCK, formula="NaCl"),
        _sample(BLOCK.replace("In 1 0.5 0 0", "In 1 0.02 0 0")),  # 0.1 Å from Mg
        _sample(BLOCK.replace("</CIF>", "")),
        _sample("no structure at all"),
    ], config)
    assert valid.reward == pytest.approx(1.0)  # 0.1 + 0.3 + 0.3 + 0.3
    assert wrong_formula.reward == pytest.approx(0.7)
    assert overlapping.reward == pytest.approx(0.7)  # parses, SMACT and composition hold
    assert unclosed.reward == 0 and unclosed.terms["gate"] == 0
    assert garbage.reward == 0 and "parse" in garbage.errors


def test_trace_consistency_and_space_group_terms():
    config = RewardConfig(mlip=None, trace_consistency=1.0, specialist="space_group")
    honest, wrong_group = group_rewards([
        _sample(TRACE + BLOCK, task="space_group", targets={"spacegroup_number": 123}),
        _sample(TRACE.replace("No. 221", "No. 2"), task="space_group", targets={"spacegroup_number": 99}),
    ], config)
    # the cell is P4/mmm (123), not the Pm-3m the trace claims; its composition claim holds
    assert honest.terms["spacegroup_match"] == 1
    assert honest.terms["trace_consistency"] == pytest.approx(0.5)
    assert honest.reward == pytest.approx(1.0 + 0.5 + 1.0)
    assert wrong_group.reward == 0  # no structure block: gated
    only_composition = RewardConfig(mlip=None, trace_consistency=1.0, trace_claims=("trace_composition",))
    assert group_rewards([_sample(TRACE + BLOCK)], only_composition)[0].terms["trace_consistency"] == 1
    with pytest.raises(ValueError, match="unknown trace claims"):
        RewardConfig(trace_claims=("trace_mood",))


@pytest.mark.integration
def test_energy_term_from_a_chgnet_relaxation_of_a_real_crystal():
    record = next(r for r in load_dataset("mp20-mini").records("test") if len(r.structure) <= 4)
    sample = _sample(encode_structure(record.structure), formula=record.formula)
    (breakdown,) = group_rewards([sample], RewardConfig())
    assert breakdown.e_above_hull is not None and breakdown.e_above_hull < 0.2
    assert breakdown.reward == pytest.approx(1.0 + 10 * energy_score(breakdown.e_above_hull))


@pytest.mark.integration
def test_elasticity_specialist_scores_and_counts_bucket_hits():
    from pymatgen.core import Lattice, Structure

    from crystalreasoner.evaluation.properties import elastic_moduli

    silicon = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.47), ["Si"], [[0, 0, 0]]).get_primitive_structure()
    config = RewardConfig(specialist="elasticity")
    measured = elastic_moduli(silicon, config.mlip).values  # GPa, the buckets' units
    hit = _sample(encode_structure(silicon), formula="Si", targets=measured)
    miss = _sample(encode_structure(silicon), formula="Si", targets={"bulk_modulus_vrh": 400.0, "shear_modulus_vrh": 400.0})
    scored_hit, scored_miss = group_rewards([hit, miss], config)
    assert (scored_hit.terms["property_hit"], scored_miss.terms["property_hit"]) == (1, 0)
    assert scored_hit.terms["property"] > scored_miss.terms["property"]
    assert scored_hit.reward - scored_miss.reward == pytest.approx(
        config.property * (scored_hit.terms["property"] - scored_miss.terms["property"]))


@pytest.mark.integration
def test_thermal_specialist_runs_qha_for_the_lowest_energy_samples_of_each_prompt():
    from pymatgen.core import Lattice, Structure

    salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    salt = salt.get_primitive_structure()
    strained = salt.copy()
    strained.apply_strain(-0.1)  # compressed: higher energy after 20 relaxation steps
    targets = {"thermal_expansion_300k": 3e-5}
    samples = [
        _sample(encode_structure(cell), formula="NaCl", task="thermal_expansion", targets=targets, prompt=prompt)
        for prompt in ("first", "second") for cell in (strained, salt)
    ]
    scored = group_rewards(samples, RewardConfig(specialist="thermal_expansion", thermal_top_k=1))
    with_property = [i for i, s in enumerate(scored) if "property" in s.terms]
    assert with_property == [1, 3]  # one per prompt, the lower-energy cell of each
    assert all(s.terms["property_hit"] in (0, 1) for s in (scored[1], scored[3]))
