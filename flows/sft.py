"""SFT flow: trace set (cached stage) -> fine-tuned checkpoint, resuming an interrupted run."""

from __future__ import annotations

from prefect import flow, task

from crystalreasoner.config import load_config
from crystalreasoner.stores import open_registry
from crystalreasoner.traces.builder import TraceConfig
from crystalreasoner.training.models import check_model_source
from crystalreasoner.training.sft import SFTConfig, SFTStage
from flows import STAGE_CACHE, publish_summary
from flows.traces import build_traces


@task(cache_policy=STAGE_CACHE, persist_result=True)
def fine_tune(traces_id: str, config: dict, store: str | None) -> str:
    """No automatic retries: a failed run is resumed from its checkpoint by running it again."""
    with open_registry(store) as registry:
        doc = SFTStage(load_config(SFTConfig, overrides=config)).run(registry, traces_id)
    publish_summary("sft-checkpoint", "Checkpoint", doc, "SFT checkpoint")
    return doc.artifact_id


@flow(name="sft")
def sft_flow(preset: str = "tiny-quick", overrides: dict | None = None, store: str | None = None) -> str:
    """Build (or reuse) the preset's trace set, then fine-tune on it (SPEC §4)."""
    config = load_config(SFTConfig, preset, overrides)
    check_model_source(config.model)
    trace_config = load_config(TraceConfig, config.traces_preset).model_dump(mode="json")
    traces_id = build_traces(config.dataset, trace_config, 20, store)
    return fine_tune(traces_id, config.model_dump(mode="json"), store)
