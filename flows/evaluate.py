"""Evaluation flow: cheap checks in one task, MLIP relaxations sharded across task-runner
workers (a Dask cluster when the flow runs with ``DaskTaskRunner``), then the report."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from crystalreasoner.config import load_config
from crystalreasoner.evaluation.mlip import MLIPConfig, RelaxResult, relax_many
from crystalreasoner.evaluation.report import markdown_table
from crystalreasoner.evaluation.stage import (
    EvaluateConfig,
    apply_relaxations,
    check_samples,
    generation_samples,
    hull_reference,
    novelty_reference,
    to_relax,
    write_evaluation,
)
from crystalreasoner.stores import open_registry
from flows import BACKOFF, STAGE_CACHE


@task(retries=2, retry_delay_seconds=BACKOFF[:2], cache_policy=STAGE_CACHE, persist_result=True)
def relax_shard(structures: list[dict], mlip: dict) -> list[RelaxResult]:
    """One worker's share of the relaxations; failures come back as results with a reason."""
    from pymatgen.core import Structure

    return relax_many([Structure.from_dict(s) for s in structures], MLIPConfig(**mlip))


@task(cache_policy=STAGE_CACHE, persist_result=True)
def finish(generation_id: str, config: EvaluateConfig, rows, samples, store: str | None) -> str:
    with open_registry(store) as registry:
        doc = write_evaluation(registry, generation_id, config, rows, samples)
    create_markdown_artifact(
        key="evaluation", markdown=f"## Evaluation of {generation_id}\n\n" + markdown_table(doc.summary)
    )
    return doc.artifact_id


@flow(name="evaluate")
def evaluate_flow(
    generation_id: str,
    preset: str = "cheap",
    overrides: dict | None = None,
    shards: int = 2,
    store: str | None = None,
) -> str:
    """Evaluate a generation batch; returns the evaluation artifact id."""
    config = load_config(EvaluateConfig, preset, overrides)
    with open_registry(store) as registry:
        samples = generation_samples(registry, generation_id)
    reference = (
        novelty_reference(config.novelty_dataset, config.novelty_splits) if config.novelty_dataset else None
    )
    rows = check_samples(samples, config, reference)
    if config.mlip is not None:
        indices = to_relax(rows, samples)
        chunks = [indices[k::shards] for k in range(shards) if indices[k::shards]]
        futures = [
            relax_shard.submit([samples[i].structure for i in chunk], config.mlip.model_dump()) for chunk in chunks
        ]
        relaxed = {i: r for chunk, f in zip(chunks, futures) for i, r in zip(chunk, f.result())}
        apply_relaxations(rows, relaxed, hull_reference(config.hull_reference))
    return finish(generation_id, config, rows, samples, store)
