"""GRPO from an SFT checkpoint with TRL's ``GRPOTrainer`` and the physics reward (SPEC §5).

Completions are sampled by our continuous-batching sampler (the trainer's ``generate`` is the
CPU bottleneck), rewards are computed per generation batch with :func:`group_rewards`, and
every reward term is logged per step (mean, and the share of samples failing each gate).
Runs checkpoint and resume like SFT; the final checkpoint records the SFT checkpoint it started
from as its parent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import TrainerCallback

from crystalreasoner.config import StageConfig
from crystalreasoner.data.property_tables import load_property_table
from crystalreasoner.errors import ConfigError
from crystalreasoner.generation.constraints import CompositionConstraint, CompositionTarget
from crystalreasoner.generation.sampler import ContinuousBatchSampler, Request, SamplingParams
from crystalreasoner.generation.stage import (
    GenerateConfig,
    GeneratedSample,
    PromptSpec,
    parse_sample,
    prompt_trace_set,
    prompts_from_table,
    prompts_from_traces,
)
from crystalreasoner.hashing import sha256_json
from crystalreasoner.rl.reward import RewardConfig, group_rewards
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.training.models import load_checkpoint
from crystalreasoner.training.sft import TimeBudget, last_complete_checkpoint, publish_checkpoint

#: our defaults for ``trl.GRPOConfig`` (SPEC §5: no KL term, T = 1); presets override them
GRPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-5,
    "beta": 0.0,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "max_completion_length": 1024,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 2,
    "report_to": "none",
    "lr_scheduler_type": "constant",
}


class RLConfig(StageConfig):
    """An RL run: which prompts, which reward, and TRL's knobs (``trl_args``) passed through."""

    preset_folder: ClassVar[str] = "rl"
    task: str = "conditional"  # prompts of this task from the SFT checkpoint's trace set
    split: str = "train"
    #: take the prompts from this composition-only property table instead of a trace set
    #: (a bundled name such as ``aflow-thermal-expansion``, or a CSV path)
    prompt_table: str | None = None
    max_prompts: int | None = None
    reward: RewardConfig = RewardConfig()
    max_minutes: float | None = None
    seed: int = 0
    #: sample the groups as ``generate --redraw-close-atoms`` does: an atom line that lands on an
    #: earlier atom (or cannot be read) is drawn again, so the validity terms do not favour cells
    #: with fewer atoms, where the tiny models collide less
    redraw_close_atoms: bool = False
    #: sample the groups as ``generate --constrained`` does (the requested composition by
    #: construction, with the redraws), for a model that will be used constrained
    constrained: bool = False
    trl_args: dict[str, Any] = {}

    def run_key(self, checkpoint_id: str, traces_id: str | None = None) -> str:
        """Names the run folder: the same config from the same checkpoint (on the same chosen
        trace set) resumes the same run."""
        config = self.model_dump(mode="json", exclude={"max_minutes"})
        chosen = {"traces": traces_id} if traces_id else {}
        return sha256_json({"config": config, "checkpoint": checkpoint_id, **chosen})[:16]


class StepTimer(TrainerCallback):
    """Seconds per GRPO step split into generation, reward (of which MLIP) and the rest (update).

    The trainer adds generation time, the reward function reward and MLIP time; each step's
    split is appended to ``step_times.jsonl`` in the run folder.
    """

    def __init__(self, path: Path):
        self.path = path
        self.current = {"generation": 0.0, "reward": 0.0, "mlip": 0.0}
        self.started = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.current = dict.fromkeys(self.current, 0.0)

    def on_step_end(self, args, state, control, **kwargs):
        total = time.perf_counter() - self.started
        split = {k: round(v, 2) for k, v in self.current.items()}
        split["update"] = round(total - self.current["generation"] - self.current["reward"], 2)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": state.global_step, "total": round(total, 2), **split}) + "\n")


def forget_unsaved_steps(reward_log: Path, step_times: Path, saved_step: int) -> None:
    """Drop the log lines of steps after the checkpoint a run resumes from (all of them for a
    fresh start): those steps are taken again, and a killed run's lines were logged twice.
    ``reward_terms.jsonl`` numbers a step as it starts (0-based), ``step_times.jsonl`` as it ends."""
    for path, keep in ((reward_log, lambda step: step < saved_step), (step_times, lambda step: step <= saved_step)):
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if keep(json.loads(line)["step"])]
            path.write_text("".join(line + "\n" for line in lines))


def _grpo_trainer_class():
    """``GRPOTrainer`` with its generation step replaced by our continuous-batching sampler."""
    import trl

    class FastGRPOTrainer(trl.GRPOTrainer):
        timer: StepTimer | None = None
        #: the redraws of ``RLConfig.redraw_close_atoms`` or ``constrained`` (built once: it decodes
        #: the vocabulary), and with ``constrained`` each step's targets by request id
        rollout_constraint: CompositionConstraint | None = None
        constrained: bool = False
        rollout_targets: dict[str, CompositionTarget] | None = None

        def _generate_and_score_completions(self, inputs):
            if self.constrained:  # row i of ``inputs`` is request i of ``_generate_single_turn``
                self.rollout_targets = {
                    str(i): CompositionConstraint.request_target(row["prompt"][-1]["content"], row["formula"])
                    for i, row in enumerate(inputs)
                }
            return super()._generate_and_score_completions(inputs)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            started = time.perf_counter()
            model = self.accelerator.unwrap_model(self.model_wrapped)
            was_training = model.training
            params = SamplingParams(
                temperature=self.args.temperature, top_k=self.args.top_k or 0, top_p=self.args.top_p,
                max_new_tokens=self.args.max_completion_length, seed=self.args.seed + self.state.global_step,
            )
            mask = None
            if self.rollout_constraint is not None:
                self.rollout_constraint.redraws.clear()  # a fresh budget: request ids restart each step
                mask = self.rollout_constraint.token_mask(self.rollout_targets)  # None: redraws only
            with torch.no_grad():
                sampler = ContinuousBatchSampler(model, stop_ids=set(self.eos_token_ids))
                requests = [Request(str(i), list(ids)) for i, ids in enumerate(prompt_ids)]
                done = {int(c.request_id): c.token_ids for c in sampler.generate(requests, params, mask)}
            model.train(was_training)
            if self.timer:
                self.timer.current["generation"] += time.perf_counter() - started
            return [done[i] for i in range(len(prompt_ids))], None

    return FastGRPOTrainer


class RewardLog:
    """The TRL reward function: parses completions, scores the group, logs every term."""

    __name__ = "crystal_reward"

    def __init__(self, tokenizer, config: RewardConfig, path: Path, timer: StepTimer | None = None):
        self.tokenizer, self.config, self.path, self.timer = tokenizer, config, path, timer

    def __call__(self, prompts, completions, completion_ids, formula, task, targets, log_metric=None, trainer_state=None, **_):
        samples = []
        for i, ids in enumerate(completion_ids):
            text = self.tokenizer.decode(ids, skip_special_tokens=False).replace(self.tokenizer.eos_token, "")
            request = prompts[i][-1]["content"] if isinstance(prompts[i], list) else str(prompts[i])
            samples.append(parse_sample(GeneratedSample(
                i, 0, request, formula[i], None, task[i], json.loads(targets[i]), text, "stop", len(ids)
            )))
        started = time.perf_counter()
        rewards = group_rewards(samples, self.config)
        seconds = time.perf_counter() - started
        mlip_seconds = sum(r.mlip_seconds for r in rewards)
        if self.timer:
            self.timer.current["reward"] += seconds
            self.timer.current["mlip"] += mlip_seconds
        step = {
            "step": trainer_state.global_step if trainer_state else None,
            "reward_seconds": round(seconds, 2),
            "mlip_seconds": round(mlip_seconds, 2),
            "reward": sum(r.reward for r in rewards) / len(rewards),
        }
        names = sorted({name for r in rewards for name in r.terms})
        for name in names:
            values = [r.terms.get(name, 0.0) for r in rewards]
            step[f"{name}/mean"] = sum(values) / len(values)
            if name != "energy":
                step[f"{name}/fail_share"] = sum(v == 0 for v in values) / len(values)
        e_hull = [r.e_above_hull for r in rewards if r.e_above_hull is not None]
        step["e_above_hull/mean"] = sum(e_hull) / len(e_hull) if e_hull else None
        step["errors"] = {stage: sum(stage in r.errors for r in rewards) for stage in ("parse", "mlip", "hull", "property")}
        with self.path.open("a") as handle:
            handle.write(json.dumps(step) + "\n")
        if log_metric:
            for key, value in step.items():
                if isinstance(value, float):
                    log_metric(f"reward_terms/{key}", value)
        return [r.reward for r in rewards]


def _prompt_dataset(prompts: list[PromptSpec]):
    from datasets import Dataset

    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": p.prompt}], "formula": p.formula, "task": p.task,
         "targets": json.dumps(p.targets)}
        for p in prompts
    ])


@dataclass
class RLStage:
    """GRPO from a registered SFT checkpoint; registers the RL checkpoint with its reward log."""

    config: RLConfig

    def prompts(
        self, registry: ArtifactRegistry, checkpoint_id: str, traces_id: str | None = None, split: str | None = None
    ) -> list[PromptSpec]:
        """The prompts of this run's task: from the configured property table, ``traces_id``, or
        the checkpoint's own trace set."""
        split = split or self.config.split
        if self.config.prompt_table is not None:
            rows = load_property_table(self.config.prompt_table)
            prompts = prompts_from_table(rows, split, self.config.task, self.config.seed)
            if not prompts:
                raise ConfigError(f"the table {self.config.prompt_table} has no {self.config.task!r} prompts in {split}")
            return prompts[: self.config.max_prompts]
        traces = prompt_trace_set(registry, checkpoint_id, traces_id)
        prompts = prompts_from_traces(traces.location, split, self.config.task)
        if not prompts:
            raise ConfigError(f"the trace set {traces.artifact_id} has no {self.config.task!r} prompts in {split}")
        return prompts[: self.config.max_prompts]

    def run(
        self,
        registry: ArtifactRegistry,
        checkpoint_id: str,
        *,
        traces_id: str | None = None,
        run_dir: str | Path | None = None,
        resume: bool = True,
    ) -> ArtifactDoc:
        import trl

        cfg = self.config
        start_doc = registry.get(checkpoint_id)
        run_dir = Path(run_dir or registry.spec.files_root / "runs" / f"rl-{cfg.run_key(checkpoint_id, traces_id)}")
        run_dir.mkdir(parents=True, exist_ok=True)
        model, tokenizer = load_checkpoint(start_doc.location)
        model.train()
        # the trace set the prompts come from is a parent, so its held-out prompts go with the result
        traces = None if cfg.prompt_table is not None else prompt_trace_set(registry, checkpoint_id, traces_id)
        prompts = self.prompts(registry, checkpoint_id, traces.artifact_id if traces else None)
        args = trl.GRPOConfig(
            output_dir=str(run_dir / "trainer"), seed=cfg.seed, use_cpu=not torch.cuda.is_available(),
            **{**GRPO_DEFAULTS, **cfg.trl_args},
        )
        reward_log = run_dir / "reward_terms.jsonl"
        timer = StepTimer(run_dir / "step_times.jsonl")
        trainer = _grpo_trainer_class()(
            model=model,
            reward_funcs=[RewardLog(tokenizer, cfg.reward, reward_log, timer)],
            args=args,
            train_dataset=_prompt_dataset(prompts),
            processing_class=tokenizer,
            callbacks=[TimeBudget(cfg.max_minutes), timer],
        )
        trainer.timer = timer
        if cfg.redraw_close_atoms or cfg.constrained:
            defaults = GenerateConfig()  # the same redraws (and largest cell) as generate's
            trainer.rollout_constraint = CompositionConstraint(
                tokenizer, defaults.max_atoms, min_distance=defaults.min_distance, max_redraws=defaults.max_redraws
            )
            trainer.constrained = cfg.constrained
        last = last_complete_checkpoint(args.output_dir) if resume else None
        forget_unsaved_steps(reward_log, timer.path, int(Path(last).name.split("-")[1]) if last else 0)
        started = time.monotonic()
        result = trainer.train(resume_from_checkpoint=last)
        metrics = {
            "train_loss": result.training_loss,
            "global_step": trainer.state.global_step,
            "max_steps": trainer.state.max_steps,
            "resumed_from": last,
            "train_seconds_this_process": round(time.monotonic() - started, 1),
            "prompts": len(prompts),
            "started_from": checkpoint_id,
        }
        final = publish_checkpoint(
            trainer, tokenizer, run_dir / "final", f"GRPO from {start_doc.name}", cfg.model_dump(mode="json"),
            metrics, {"sft_checkpoint": checkpoint_id}, extra_files=[reward_log, timer.path],
        )
        return registry.register(
            ArtifactKind.CHECKPOINT,
            name=f"rl ({cfg.reward.specialist}) from {start_doc.name}",
            config=cfg.model_dump(mode="json"),
            parents=[checkpoint_id, *([traces.artifact_id] if traces else [])],
            files=sorted(p for p in final.iterdir() if p.is_file()),
            location=final,
            summary=metrics,
        )
