"""Paired comparison of checkpoints on held-out prompts: the same prompts, sampling settings and
seed for each, scored by the RL reward and the evaluation's checks (one source of truth)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crystalreasoner.evaluation.metrics import aggregate, mean_and_stderr
from crystalreasoner.evaluation.stage import EvaluateConfig, check_samples
from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, PromptSpec, load_samples
from crystalreasoner.rl.reward import RewardConfig, group_rewards
from crystalreasoner.stores import ArtifactRegistry

#: the evaluation columns shown next to the reward
COLUMNS = ("parsed", "structurally_valid", "smact_valid", "composition_match", "spacegroup_match",
           "trace_spacegroup", "trace_crystal_system", "trace_composition", "trace_composition_overlap",
           "trace_spacegroup_and_composition")


def score_checkpoint(
    registry: ArtifactRegistry,
    checkpoint_id: str,
    prompts: Sequence[PromptSpec],
    reward: RewardConfig,
    generate: GenerateConfig,
) -> dict[str, Any]:
    """Sample ``prompts``, then the mean reward (per prompt first, with SE) and the check columns."""
    doc = GenerateStage(generate).run(registry, checkpoint_id, list(prompts), name="paired comparison")
    samples = load_samples(Path(doc.location) / "samples.jsonl")
    rewards = group_rewards(samples, reward)
    rows = check_samples(samples, EvaluateConfig(novelty_dataset=None))
    table = aggregate((r.prompt_index, {k: v for k, v in r.metrics.items() if k in COLUMNS}) for r in rows)
    by_prompt: dict[int, list[float]] = defaultdict(list)
    for sample, breakdown in zip(samples, rewards):
        by_prompt[sample.prompt_index].append(breakdown.reward)
    means = [sum(v) / len(v) for v in by_prompt.values()]
    mean, stderr = mean_and_stderr(means)
    e_hull = [b.e_above_hull for b in rewards if b.e_above_hull is not None]
    return {
        "checkpoint": checkpoint_id,
        "generation": doc.artifact_id,
        "reward": {"mean": mean, "stderr": stderr},
        "per_prompt_reward": means,
        "relaxed": len(e_hull),
        "e_above_hull_mean": sum(e_hull) / len(e_hull) if e_hull else None,
        "stable_share": sum(e < 0.1 for e in e_hull) / len(samples),
        # specialists: share of all samples whose relaxed structure lands in every target bucket
        "property_hit_share": sum(b.terms.get("property_hit", 0) for b in rewards) / len(samples),
        **{name: table[name] for name in COLUMNS if name in table},
    }


def paired_difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Mean and standard error of the per-prompt reward differences (after - before)."""
    diffs = [b - a for a, b in zip(before["per_prompt_reward"], after["per_prompt_reward"])]
    mean, stderr = mean_and_stderr(diffs)
    return {"mean": mean, "stderr": stderr, "prompts": len(diffs)}
