"""Evaluation stage: score a generation batch and register the table (cheap checks for now)."""

from __future__ import annotations

import json
from pathlib import Path

from crystalreasoner.evaluation.metrics import aggregate, cheap_metrics
from crystalreasoner.generation.stage import load_samples
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry


def evaluate_generation(registry: ArtifactRegistry, generation_id: str) -> ArtifactDoc:
    """Per-sample metrics, aggregated per prompt then over prompts; ``summary`` holds the table."""
    generation = registry.get(generation_id)
    samples = load_samples(Path(generation.location) / "samples.jsonl")
    rows = [{"prompt_index": s.prompt_index, "sample_index": s.sample_index, **cheap_metrics(s)} for s in samples]
    table = aggregate((r["prompt_index"], {k: v for k, v in r.items() if not k.endswith("index")}) for r in rows)
    out = Path(generation.location) / "evaluation"
    out.mkdir(exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(table, indent=1))
    (out / "per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return registry.register(
        ArtifactKind.EVALUATION,
        name=f"evaluation of {generation.name}",
        config={"metrics": "cheap"},
        parents=[generation_id],
        files=[out / "metrics.json", out / "per_sample.jsonl"],
        location=out,
        summary=table,
    )
