"""Self-distillation keeps exactly the samples that pass the report's checks, and the unreadable
ones as a rejected split, and registers a trace set the SFT stage reads, with the held-out
prompts of the set it came from."""

import json
from dataclasses import asdict

from datasets import load_from_disk

from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.stores import ArtifactKind, ArtifactRegistry, load_store_spec
from crystalreasoner.traces.builder import TraceConfig, TraceRecord
from crystalreasoner.training.distill import distil


def _record(split: str, formula: str, i: int) -> TraceRecord:
    return TraceRecord(
        [{"role": "user", "content": f"Make {formula}."}], [{"role": "assistant", "content": f"<CIF>{i}</CIF>"}],
        "conditional", f"mp-{i}", split, 0, formula, 2, 2, 1.0, f"hash{i}",
    )


def test_distil_keeps_the_passing_samples_next_to_drawn_originals(tmp_path, crysreas_home):
    crystals = [r for r in load_dataset("mp20-mini").records("test") if 2 <= len(r.structure) <= 6][:3]
    good = [encode_structure(r.structure) for r in crystals]
    twice = good[0].replace("</CIF>", good[0].splitlines()[-2] + "\n</CIF>")  # a site written twice
    texts = [*good, twice, good[1], "<CIF>\nP1\nbroken"]
    formulas = [r.formula for r in crystals] + [crystals[0].formula, "NaCl", None]  # None: an unconditional prompt
    samples = [
        asdict(parse_sample(GeneratedSample(i, 0, f"Make {f}.", f, None, "conditional", {}, t, "stop", 1)))
        for i, (t, f) in enumerate(zip(texts, formulas))
    ]
    base = tmp_path / "traces"
    base.mkdir()
    splits = {"train": [_record("train", "NaCl", i) for i in range(5)], "val": [_record("val", "KCl", 9)]}
    for split, records in splits.items():
        (base / f"{split}.jsonl").write_text("".join(json.dumps(asdict(r)) + "\n" for r in records))
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    with ArtifactRegistry(load_store_spec("memory")) as registry:
        traces = registry.register(
            ArtifactKind.TRACES, name="base", config=TraceConfig().model_dump(mode="json"),
            files=sorted(base.iterdir()), location=base,
        )
        checkpoint = registry.register(ArtifactKind.CHECKPOINT, name="ckpt", config={}, parents=[traces.artifact_id])
        generation = registry.register(
            ArtifactKind.GENERATION, name="gen", config={}, parents=[checkpoint.artifact_id],
            files=[tmp_path / "gen" / "samples.jsonl"], location=tmp_path / "gen",
        )
        doc = distil(registry, [generation.artifact_id], originals=2)
        assert [d.artifact_id for d in registry.lineage(doc.artifact_id)][:2] == [generation.artifact_id, traces.artifact_id]
    assert doc.summary["passing"] == 3 and doc.summary["originals"] == 2 and doc.summary["samples"] == 6
    assert doc.summary["rejected"] == 1  # the unreadable block departs at "broken"; the site twice parses
    data = load_from_disk(f"{doc.location}/hf")
    answers = [c[0]["content"] for c in data["train"]["completion"]]
    assert sorted(a for a in answers if a in good) == sorted(good)  # each passing sample once
    assert twice not in answers and len(answers) == 5  # + 2 of the 5 originals
    assert data["val"]["formula"] == ["KCl"]  # held-out prompts as in the base set
    assert [c[0]["content"] for c in data["rejected"]["completion"]] == ["<CIF>\nP1\nbroken"]
