"""GRPO through TRL's GRPOTrainer with our sampler and reward: terms logged, checkpoint linked
to the SFT checkpoint it started from, and a second run of the same config resumes."""

from __future__ import annotations

import json
from pathlib import Path

from crystalreasoner.rl.grpo import RLConfig, RLStage, forget_unsaved_steps
from crystalreasoner.training.sft import SFTConfig, SFTStage

from .conftest import TINY_MODEL

RL_FAST = {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 24,
           "max_steps": 2, "save_steps": 1}


def test_grpo_from_sft_logs_reward_terms_and_resumes(registry, traces_id, tmp_path):
    sft = SFTStage(SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                             trl_args={"max_steps": 2, "per_device_train_batch_size": 4, "eval_steps": 1000}))
    sft_id = sft.run(registry, traces_id).artifact_id
    # the groups are sampled through the validity redraws (the path of redraw_close_atoms)
    config = RLConfig(split="train", reward={"mlip": None}, redraw_close_atoms=True, trl_args=RL_FAST)
    run_dir = tmp_path / "rl"
    doc = RLStage(config).run(registry, sft_id, run_dir=run_dir)
    assert [d.artifact_id for d in registry.lineage(doc.artifact_id)][0] == sft_id
    assert doc.parents == [sft_id, traces_id]  # its prompts' trace set: generate --split finds it
    assert doc.summary["global_step"] == 2 and doc.summary["started_from"] == sft_id
    steps = [json.loads(line) for line in (Path(doc.location) / "reward_terms.jsonl").read_text().splitlines()]
    assert len(steps) == 2
    times = [json.loads(line) for line in (Path(doc.location) / "step_times.jsonl").read_text().splitlines()]
    assert len(times) == 2 and all(t["generation"] > 0 and t["update"] > 0 for t in times)
    assert {"reward", "gate/mean", "gate/fail_share", "parsed/mean", "energy/mean"} <= set(steps[0])
    again = RLStage(config).run(registry, sft_id, run_dir=run_dir)
    assert again.summary["resumed_from"].endswith("checkpoint-2")


def test_paired_comparison_uses_the_same_prompts_and_seed(registry, traces_id):
    from crystalreasoner.generation.stage import GenerateConfig
    from crystalreasoner.rl.compare import paired_difference, score_checkpoint
    from crystalreasoner.rl.reward import RewardConfig

    sft = SFTStage(SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                             trl_args={"max_steps": 1, "per_device_train_batch_size": 4, "eval_steps": 1000}))
    sft_id = sft.run(registry, traces_id).artifact_id
    prompts = RLStage(RLConfig()).prompts(registry, sft_id, split="val")
    generate = GenerateConfig(n_samples=2, max_new_tokens=16, seed=3)
    first, again = (score_checkpoint(registry, sft_id, prompts, RewardConfig(mlip=None), generate) for _ in range(2))
    assert first["per_prompt_reward"] == again["per_prompt_reward"]  # same seed, same samples
    assert paired_difference(first, again) == {"mean": 0.0, "stderr": 0.0, "prompts": len(prompts)}
    assert {"reward", "parsed", "composition_match"} <= set(first)


def test_constrained_grpo_holds_each_rollout_to_its_own_prompts_formula(registry, traces_id, tmp_path, monkeypatch):
    """``RLConfig.constrained``: the rollouts get generate's composition mask, request i with the
    formula of prompt i (a request keyed to another prompt would allow another's elements)."""
    from pymatgen.core import Composition

    from crystalreasoner.rl import grpo
    from crystalreasoner.training.models import load_checkpoint

    calls = []
    generate = grpo.ContinuousBatchSampler.generate

    def recording(self, requests, params, token_mask=None):
        calls.append((requests, token_mask))
        return generate(self, requests, params, token_mask)

    monkeypatch.setattr(grpo.ContinuousBatchSampler, "generate", recording)
    sft = SFTStage(SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                             trl_args={"max_steps": 1, "per_device_train_batch_size": 4, "eval_steps": 1000}))
    sft_doc = sft.run(registry, traces_id)
    config = RLConfig(split="train", reward={"mlip": None}, constrained=True, trl_args={**RL_FAST, "max_steps": 1})
    RLStage(config).run(registry, sft_doc.artifact_id, run_dir=tmp_path / "rl")

    tokenizer = load_checkpoint(sft_doc.location)[1]
    formulas = {p.prompt: p.formula for p in RLStage(config).prompts(registry, sft_doc.artifact_id)}
    header = tokenizer("<think>\nx\n</think>\n<CIF>\nP1\n4 4 4\n90 90 90\n", add_special_tokens=False)["input_ids"]
    requests, mask = calls[0]
    assert len(requests) == RL_FAST["per_device_train_batch_size"]
    for request in requests:
        prompt = tokenizer.decode(request.prompt_ids)
        elements = {el.symbol for el in Composition(next(f for p, f in formulas.items() if p in prompt))}
        mask([request], [[]])  # forget the rollout's own text
        allowed = [tokenizer.decode([i]) for i in mask([request], [header]).allowed[0].nonzero().flatten().tolist()]
        assert allowed, prompt
        assert all(any(el.startswith(t) or t.startswith(el) for el in elements) for t in allowed), (prompt, allowed)


def test_a_resumed_run_logs_each_step_once(tmp_path):
    """A run killed after checkpoint-3 had logged steps 4 and 5 too; they are taken again."""
    rewards, times = tmp_path / "reward_terms.jsonl", tmp_path / "step_times.jsonl"
    rewards.write_text("".join(json.dumps({"step": s, "reward": 1.0}) + "\n" for s in range(5)))  # as steps start
    times.write_text("".join(json.dumps({"step": s, "total": 2.0}) + "\n" for s in range(1, 6)))  # as they end
    forget_unsaved_steps(rewards, times, saved_step=3)
    assert [json.loads(line)["step"] for line in rewards.read_text().splitlines()] == [0, 1, 2]
    assert [json.loads(line)["step"] for line in times.read_text().splitlines()] == [1, 2, 3]
    forget_unsaved_steps(rewards, times, saved_step=0)  # a fresh start in an old run folder
    assert rewards.read_text() == "" and times.read_text() == ""
