"""RL flow: GRPO from an SFT checkpoint on the physics reward (SPEC §5)."""

from __future__ import annotations

from prefect import flow, task

from crystalreasoner.config import load_config
from crystalreasoner.rl.grpo import RLConfig, RLStage
from crystalreasoner.stores import open_registry
from flows import STAGE_CACHE, publish_summary


@task(cache_policy=STAGE_CACHE, persist_result=True)
def reinforce(checkpoint_id: str, traces_id: str | None, config: dict, store: str | None) -> str:
    """No automatic retries: a crashed run resumes from its last checkpoint when run again."""
    with open_registry(store) as registry:
        doc = RLStage(RLConfig(**config)).run(registry, checkpoint_id, traces_id=traces_id)
    publish_summary("rl-checkpoint", "RL checkpoint", doc, "GRPO checkpoint")
    return doc.artifact_id


@flow(name="rl")
def rl_flow(
    checkpoint_id: str,
    preset: str = "tiny-cpu",
    overrides: dict | None = None,
    traces_id: str | None = None,
    store: str | None = None,
) -> str:
    """GRPO from ``checkpoint_id``; returns the RL checkpoint's artifact id."""
    config = load_config(RLConfig, preset, overrides)
    return reinforce(checkpoint_id, traces_id, config.model_dump(mode="json"), store)
