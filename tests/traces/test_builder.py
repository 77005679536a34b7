"""Trace records: determinism, caching, variants, tasks, rebalancing and outputs."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from itertools import groupby
from operator import itemgetter

import pytest
from pymatgen.core import Lattice, Structure

from crystalreasoner.config import list_presets, load_config
from crystalreasoner.data import STRUCTURE_START, CrystalRecord, DatasetBundle, decode_structure
from crystalreasoner.data.codec import site_field
from crystalreasoner.errors import ConfigError
from crystalreasoner.tasks import BULK_MODULUS, THERMAL_EXPANSION, Task
from crystalreasoner.traces.analysis import analyze_structure
from crystalreasoner.traces.builder import (
    TraceConfig,
    build_trace_set,
    codec_config,
    element_count_weights,
    render_record,
)
from crystalreasoner.traces.render import THINK_START, parse_trace_claims


def _texts(trace_set):
    return {s: [(r.prompt[0]["content"], r.completion[0]["content"]) for r in recs]
            for s, recs in trace_set.splits.items()}


def test_same_seed_same_records_other_seed_other_phrasing(small_bundle, cache):
    config = load_config(TraceConfig, "tiny")
    first = build_trace_set(small_bundle, config, cache)
    again = build_trace_set(small_bundle, config, cache)
    assert _texts(first) == _texts(again)
    assert first.fingerprint() == again.fingerprint()
    other = build_trace_set(small_bundle, config.model_copy(update={"seed": 1}), cache)
    assert _texts(other) != _texts(first)


def test_second_build_reuses_cached_analyses(small_bundle, cache):
    config = TraceConfig(n_jobs=2)
    first = build_trace_set(small_bundle, config, cache)
    assert first.computed == 14 and first.cache_hits == 0
    second = build_trace_set(small_bundle, config, cache)
    assert second.computed == 0 and second.cache_hits == 14
    assert _texts(first) == _texts(second)


def test_trace_sections_in_order_and_block_decodes(small_bundle, cache):
    record = build_trace_set(small_bundle, TraceConfig(), cache).splits["train"][0]
    text = record.completion[0]["content"]
    positions = [text.index(h) for h in ("Symmetry:", "Coordination:", "Volume:", "Properties:", STRUCTURE_START)]
    assert positions == sorted(positions)
    structure = decode_structure(text)
    claims = parse_trace_claims(text)
    assert claims.composition == dict(structure.composition.as_dict())
    assert math.isclose(claims.volume, structure.volume, abs_tol=0.01)
    # every orbit has a coordination line, with the CrystalNN coordination number
    assert sum(len(v) for v in claims.coordination_numbers.values()) == sum(
        len(v) for v in claims.orbits.values()
    )


def test_no_thinking_variant_is_the_structure_block_only(small_bundle, cache):
    trace_set = build_trace_set(small_bundle, load_config(TraceConfig, "no-thinking"), cache)
    for record in trace_set.splits["val"]:
        answer = record.completion[0]["content"]
        assert answer.startswith(STRUCTURE_START) and THINK_START not in answer


def test_variants_augment_train_only_and_keep_the_crystal(small_bundle, cache):
    config = load_config(TraceConfig, "tiny", {"oversample": False, "rebalance_power": 0.0})
    trace_set = build_trace_set(small_bundle, config, cache)
    train = [r for r in trace_set.splits["train"] if r.task == "conditional"]
    assert len(train) == 8 * config.variants_per_structure
    assert len(trace_set.splits["val"]) == 3 * len(config.tasks)
    variants = [r for r in train if r.material_id == train[0].material_id]
    blocks = {r.completion[0]["content"].split(STRUCTURE_START)[1] for r in variants}
    assert len(blocks) == len(variants)  # each variant writes the cell differently
    volumes = {round(decode_structure(r.completion[0]["content"]).volume, 2) for r in variants}
    assert len(volumes) == 1


def test_the_tiny_labels_preset_writes_site_labels_the_sft_stage_reads_back(small_bundle, cache):
    config = load_config(TraceConfig, "tiny-labels")
    record = build_trace_set(small_bundle, config, cache).splits["val"][0]
    block = record.completion[0]["content"].split(STRUCTURE_START)[1]
    labels = [line.split()[0] for line in block.splitlines()[4:-1]]
    assert labels and all(label[-1].isdigit() for label in labels)
    assert codec_config(config.model_dump()).site_labels == "ascending"
    assert codec_config({"coord_decimals": 4, "lattice_decimals": 3}).site_labels == "none"  # older sets
    assert codec_config({"coord_decimals": 4, "lattice_decimals": 3, "site_labels": True}).site_labels == "ascending"


def test_the_tiny_restated_preset_ends_the_trace_on_the_blocks_element_counts(small_bundle, cache):
    """The last trace line names the block's elements in block order with their site counts."""
    config = load_config(TraceConfig, "tiny-restated")
    records = build_trace_set(small_bundle, config, cache).splits["train"]
    plain = build_trace_set(small_bundle, config.model_copy(update={"restate_composition": False}), cache)
    for record, without in zip(records, plain.splits["train"], strict=True):
        thinking, block = record.completion[0]["content"].split(STRUCTURE_START)
        last = thinking.strip().splitlines()[-2]  # the line before </think>
        assert last.startswith("Sites to write: ") and last.endswith(".")
        sites = [site_field(line.split()[0]) for line in block.splitlines()[4:-1]]
        counts = [f"{symbol}{next(run)[1]}" for symbol, run in groupby(sites, key=itemgetter(0))]
        assert last.removeprefix("Sites to write: ").removesuffix(".").split() == counts
        assert record.completion[0]["content"].replace(last + "\n", "") == without.completion[0]["content"]


def test_explicit_counts_follow_the_probability(small_bundle, cache):
    always = build_trace_set(small_bundle, TraceConfig(explicit_counts=1.0), cache)
    never = build_trace_set(small_bundle, TraceConfig(explicit_counts=0.0), cache)
    assert all("The cell contains" in r.prompt[0]["content"] for r in always.splits["train"])
    assert not any("The cell contains" in r.prompt[0]["content"] for r in never.splits["train"])


def test_rebalancing_weights_favour_rare_element_counts():
    weights = element_count_weights([2] * 8 + [3] * 2, power=1.0)
    assert math.isclose(sum(weights) / len(weights), 1.0)
    assert weights[-1] == pytest.approx(4 * weights[0])
    assert element_count_weights([2, 3, 3], power=0.0) == [1.0, 1.0, 1.0]


def test_oversampling_gives_rare_compositions_more_variants(mp20, cache):
    train = mp20.splits["train"]
    binaries = [r for r in train if r.n_elements == 2][:9]
    quaternary = [r for r in train if r.n_elements == 4][:1]
    bundle = DatasetBundle("mix", {"train": binaries + quaternary})
    config = TraceConfig(describer="none", variants_per_structure=2, rebalance_power=1.0, oversample=True)
    records = build_trace_set(bundle, config, cache).splits["train"]
    per_material = {r.material_id: 0 for r in records}
    for r in records:
        per_material[r.material_id] += 1
    assert per_material[quaternary[0].material_id] > per_material[binaries[0].material_id]


def test_specialist_prompts_name_their_targets(cache):
    structure = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    record = CrystalRecord(
        "synthetic-1", structure,
        {"spacegroup_number": 221, "bulk_modulus_vrh": 160.0, "shear_modulus_vrh": 90.0,
         "thermal_expansion_300k": 3.1e-5},
        split="train",
    )
    analysis = analyze_structure(structure, "none")
    config = TraceConfig(describer="none")
    prompts = {
        task: render_record(record, analysis, task, 0, config, augment=False).prompt[0]["content"]
        for task in Task
    }
    assert "space group 221" in prompts[Task.SPACE_GROUP]
    assert BULK_MODULUS.describe(BULK_MODULUS.index(160.0)) in prompts[Task.ELASTICITY]
    assert "between 150 and 300 GPa" in prompts[Task.ELASTICITY]
    assert "between 80 and 200 GPa" in prompts[Task.ELASTICITY]
    assert THERMAL_EXPANSION.describe(3) == "between 15 and 40 x10^-6/K"
    assert THERMAL_EXPANSION.describe(3) in prompts[Task.THERMAL_EXPANSION]
    assert "fewer than 10 atoms" in prompts[Task.THERMAL_EXPANSION]
    answer = render_record(record, analysis, Task.ELASTICITY, 0, config, augment=False)
    assert "bulk modulus 160 GPa" in answer.completion[0]["content"]


def test_outputs_jsonl_and_hf_dataset_agree(small_bundle, cache, tmp_path):
    trace_set = build_trace_set(small_bundle, TraceConfig(), cache)
    files = trace_set.write_jsonl(tmp_path)
    assert {f.name for f in files} == {"train.jsonl", "val.jsonl", "test.jsonl", "failures.jsonl"}
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [asdict(r) for r in trace_set.splits["train"]]
    hf = trace_set.to_hf()
    assert set(hf) == {"train", "val", "test"}
    assert hf["val"][0]["completion"] == trace_set.splits["val"][0].completion
    assert hf["train"].num_rows == len(trace_set.splits["train"])


def test_failed_analysis_is_recorded_and_the_batch_goes_on(small_bundle, cache):
    # a collapsed cell (c = 1e-9 Å) that loads, but where spglib finds no symmetry
    broken = Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, 1e-9]]), ["Na"], [[0, 0, 0]])
    bundle = DatasetBundle(
        "with-broken",
        {"train": [*small_bundle.splits["train"][:2], CrystalRecord("broken-1", broken, split="train")]},
    )
    trace_set = build_trace_set(bundle, TraceConfig(describer="none"), cache)
    assert [f["material_id"] for f in trace_set.failures] == ["broken-1"]
    assert "spglib found no symmetry" in trace_set.failures[0]["reason"]
    assert len(trace_set.splits["train"]) == 2


def test_presets_load_and_unknown_keys_are_errors():
    for name in list_presets("traces"):
        assert isinstance(load_config(TraceConfig, name), TraceConfig)
    with pytest.raises(ConfigError, match="describr"):
        load_config(TraceConfig, "default", {"describr": "robocrys"})
    with pytest.raises(ConfigError, match="known presets"):
        load_config(TraceConfig, "no-such-preset")


def test_a_mapping_override_merges_into_the_presets_mapping():
    tiny = load_config(TraceConfig, "tiny")
    merged = load_config(TraceConfig, "tiny", {"augment": {"shift_origin": False}})
    assert merged.augment.shift_origin is False and tiny.augment.shift_origin is True
    assert merged.augment.cell == tiny.augment.cell == "niggli"  # the preset's other keys stay


def test_robocrys_describer_matches_the_paper_text(small_bundle):
    record = small_bundle.splits["test"][0]
    analysis = analyze_structure(record.structure, "robocrys")
    assert "crystallizes in" in analysis.robocrys_text
    assert "np.int" not in analysis.robocrys_text
    text = render_record(record, analysis, Task.CONDITIONAL, 0, TraceConfig(describer="robocrys"), augment=False)
    assert analysis.robocrys_text in text.completion[0]["content"]
