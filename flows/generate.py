"""Generation flow: sample a checkpoint on held-out prompts and score the cheap checks."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from crystalreasoner.evaluation.report import metric_rows
from crystalreasoner.evaluation.stage import evaluate_generation
from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, prompts_from_traces
from crystalreasoner.stores import open_registry


@task(retries=1, retry_delay_seconds=10)
def sample(
    checkpoint_id: str, traces_id: str | None, split: str, max_prompts: int | None, config: dict, store: str | None
) -> str:
    """Held-out prompts of ``traces_id`` (default: the trace set the checkpoint was trained on)."""
    with open_registry(store) as registry:
        if traces_id is None:
            traces_id = next(d.artifact_id for d in registry.lineage(checkpoint_id) if d.kind == "traces")
        prompts = prompts_from_traces(registry.get(traces_id).location, split)[:max_prompts]
        return GenerateStage(GenerateConfig(**config)).run(
            registry, checkpoint_id, prompts, name=f"{split} prompts", parents=[traces_id]
        ).artifact_id


@task
def score(generation_id: str, store: str | None) -> dict:
    with open_registry(store) as registry:
        doc = evaluate_generation(registry, generation_id)
    create_table_artifact(
        key="generation-metrics",
        table=metric_rows(doc.summary),
        description=f"generation {generation_id}",
    )
    return doc.summary


@flow(name="generate")
def generate_flow(
    checkpoint_id: str,
    traces_id: str | None = None,
    split: str = "val",
    max_prompts: int | None = None,
    config: dict | None = None,
    store: str | None = None,
) -> dict:
    """Sample ``config.n_samples`` per held-out prompt, keep every sample, score them."""
    generation_id = sample(checkpoint_id, traces_id, split, max_prompts, config or {}, store)
    return score(generation_id, store)
