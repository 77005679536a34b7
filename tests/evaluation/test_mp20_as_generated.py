"""The evaluation run on real MP-20 crystals as if a model had written them (issue 4's checks):
their traces and blocks must pass, nothing is novel against a set that holds them, all unique."""

import numpy as np
import pytest

from crystalreasoner.config import load_config
from crystalreasoner.data import DatasetBundle, load_dataset
from crystalreasoner.evaluation.stage import (
    EvaluateConfig,
    evaluate_samples,
    novelty_reference,
    summarize,
)
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.traces.builder import TraceConfig, build_trace_set
from crystalreasoner.traces.cache import AnalysisCache

HELD_OUT = ("test", "val")


@pytest.fixture(scope="module")
def held_out_samples(tmp_path_factory):
    """Test + val of mp20-mini rendered by the trace builder (8 decimals, no coordination)."""
    mp20 = load_dataset("mp20-mini")
    bundle = DatasetBundle("mp20-held-out", {s: mp20.splits[s] for s in HELD_OUT})
    config = load_config(TraceConfig, "default", {"describer": "none"})
    with AnalysisCache(tmp_path_factory.mktemp("cache") / "a.sqlite") as cache:
        traces = build_trace_set(bundle, config, cache)
    records = [r for s in HELD_OUT for r in traces.splits[s]]
    return [
        parse_sample(GeneratedSample(i, 0, r.prompt[0]["content"], r.formula, r.material_id, r.task,
                               r.properties, r.completion[0]["content"], "stop", 0))
        for i, r in enumerate(records)
    ], {r.material_id: r for s in HELD_OUT for r in mp20.splits[s]}


def test_cheap_checks_novelty_and_uniqueness(held_out_samples):
    samples, _ = held_out_samples
    assert len(samples) == 265
    test_ids = {r.material_id for r in load_dataset("mp20-mini").records("test")}
    config = EvaluateConfig(novelty_dataset=None)
    rows = evaluate_samples(samples, config, reference=novelty_reference("mp20-mini", HELD_OUT))
    table = summarize(rows)
    for name in ("parsed", "composition_match", "trace_spacegroup", "trace_composition"):
        assert table[name]["mean"] == 100, name
    assert table["structurally_valid"]["mean"] >= 97
    # only valid structures are matched (a few real cells are written with angles below 20°)
    assert table["unique"]["mean"] == table["structurally_valid"]["mean"]
    # the CDVAE-style calibration point is the test split (142 crystals, 90.1 %); the 123 val
    # crystals read lower (87.0 %), so test + val is 88.7 %: sampling, not the check
    test_rows = [r for r, s in zip(rows, samples) if s.material_id in test_ids]
    assert abs(summarize(test_rows)["smact_valid"]["mean"] - 90) <= 1
    assert table["novel"]["mean"] == 0


@pytest.mark.slow
def test_chgnet_hull_after_full_relaxation(held_out_samples):
    samples, records = held_out_samples
    config = load_config(EvaluateConfig, "full", {"novelty_dataset": None})
    rows = evaluate_samples(samples, config)
    labels = {s.prompt_index: records[s.material_id].properties["e_above_hull"] for s in samples}
    pairs = [(r.e_above_hull, labels[r.prompt_index]) for r in rows if r.e_above_hull is not None]
    errors = np.abs([a - b for a, b in pairs])
    print(f"CHGNet E_hull: n={len(pairs)} MAE={errors.mean():.4f} eV/atom, "
          f"stable {100 * np.mean([a < 0.1 for a, _ in pairs]):.1f} %, negative {sum(a < 0 for a, _ in pairs)}")
    assert len(pairs) >= 0.97 * len(samples)
    assert errors.mean() <= 0.03
    assert np.mean([a < 0.1 for a, _ in pairs]) >= 0.95
