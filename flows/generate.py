"""Generation flow: sample a checkpoint on held-out prompts; every sample is kept."""

from __future__ import annotations

from prefect import flow, task

from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, prompt_trace_set, prompts_from_traces
from crystalreasoner.stores import open_registry
from flows import STAGE_CACHE, publish_summary


@task(cache_policy=STAGE_CACHE, persist_result=True)
def sample(
    checkpoint_id: str, traces_id: str | None, split: str, max_prompts: int | None, config: dict, store: str | None
) -> str:
    """Held-out prompts of ``traces_id`` (default: the trace set the checkpoint was trained on)."""
    with open_registry(store) as registry:
        traces = prompt_trace_set(registry, checkpoint_id, traces_id)
        prompts = prompts_from_traces(traces.location, split)[:max_prompts]
        doc = GenerateStage(GenerateConfig(**config)).run(
            registry, checkpoint_id, prompts, name=f"{split} prompts", parents=[traces.artifact_id]
        )
    publish_summary("generation", "Generation", doc, f"samples of checkpoint {checkpoint_id}")
    return doc.artifact_id


@flow(name="generate")
def generate_flow(
    checkpoint_id: str,
    traces_id: str | None = None,
    split: str = "val",
    max_prompts: int | None = None,
    config: dict | None = None,
    store: str | None = None,
) -> str:
    """Sample ``config.n_samples`` per held-out prompt; returns the generation artifact id."""
    return sample(checkpoint_id, traces_id, split, max_prompts, config or {}, store)
