"""Supervised fine-tuning on thinking traces with TRL's ``SFTTrainer`` (SPEC §4).

The loss is on the answer only (prompt/completion data). Runs checkpoint as they go and resume
from the last checkpoint of the same run folder, so an interrupted run loses at most
``save_steps`` steps. Final weights are safetensors, with the tokenizer and a model card.
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
from crystalreasoner.errors import ConfigError
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.traces.builder import codec_config
from crystalreasoner.training.unlikelihood import BlockUnlikelihoodSFTTrainer, rejected_tokens
from crystalreasoner.training.warmup import CopyWarmupConfig, CountWarmupConfig, warm_start
from crystalreasoner.training.models import (
    ModelConfig,
    Precision,
    apply_lora,
    bf16_autocast,
    build_model,
    build_tokenizer,
)

#: our defaults for ``trl.SFTConfig``; a preset's ``trl_args`` override them
TRL_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,  # a float in [0, 1) is a ratio of the total steps
    "num_train_epochs": 1,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "logging_steps": 10,
    "eval_strategy": "steps",
    "eval_steps": 100,
    "save_strategy": "steps",
    "save_steps": 100,
    "save_total_limit": 2,
    "activation_checkpointing": False,  # 25 % faster on CPU (STACK.md)
    "report_to": "none",
    "dataloader_num_workers": 0,
    "train_sampling_strategy": "group_by_length",  # little padding, no cross-sample packing
}


class SFTConfig(StageConfig):
    """An SFT run: which traces, which model, and TRL's knobs (``trl_args``) passed through."""

    preset_folder: ClassVar[str] = "sft"
    dataset: str = "mp20-mini"
    traces_preset: str = "tiny"
    model: ModelConfig = ModelConfig()
    max_length: int = 1664
    eval_samples: int = 64  # validation records for the periodic eval loss
    max_minutes: float | None = None  # stop (and save) after this much training time per process
    seed: int = 0
    precision: Precision = "auto"  # auto: bf16 autocast on a bf16 GPU; bf16: also on a CPU
    copy_warmup: CopyWarmupConfig | None = None  # from-scratch models: learn to copy before SFT
    count_warmup: CountWarmupConfig | None = None  # then to write as many atom lines as stated
    copy_unlikelihood: float = 0.0  # weight of the unlikelihood on copying an earlier atom line
    foreign_unlikelihood: float = 0.0  # weight of the unlikelihood on block-foreign tokens in the block
    rejected_unlikelihood: float = 0.0  # weight of the unlikelihood on the rejected split's departure tokens
    rejected_per_step: int = 8  # rejected answers per training step
    trl_args: dict[str, Any] = {}

    def run_key(self, traces_id: str) -> str:
        """Names the run folder: the same config on the same traces resumes the same run.

        ``max_minutes`` is a limit on one process, not part of what is trained, so a run can be
        resumed with another budget.
        """
        config = self.model_dump(mode="json", exclude={"max_minutes"})
        return sha256_json({"config": config, "traces": traces_id})[:16]


def last_complete_checkpoint(folder: str | Path) -> str | None:
    """The newest ``checkpoint-N`` in ``folder`` that the trainer finished writing.

    The trainer writes ``trainer_state.json`` last, so a folder without a readable one is what a
    kill during the save left behind; resuming from it would fail, so it is skipped.
    """
    steps = []
    for path in Path(folder).glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
            steps.append((int(path.name.split("-")[1]), path))
        except (OSError, ValueError):
            continue
    return str(max(steps)[1]) if steps else None


class TimeBudget(TrainerCallback):
    """Stop after ``minutes`` of training in this process, saving a checkpoint first."""

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else minutes * 60
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.monotonic() - self.start > self.seconds:
            control.should_training_stop = True
            control.should_save = True
        return control


def publish_checkpoint(
    trainer, tokenizer, final: Path, title: str, config: dict, metrics: dict, data: dict,
    extra_files: list[Path] = (),
) -> Path:
    """Safetensors weights, tokenizer, training log, metrics and model card in ``final``.

    The trainer's pickled ``training_args.bin`` is removed: what we publish loads without pickle.
    """
    import shutil

    trainer.save_model(str(final))
    (final / "training_args.bin").unlink(missing_ok=True)
    tokenizer.save_pretrained(final)
    (final / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    (final / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for path in extra_files:
        if Path(path).exists():
            shutil.copy(path, final / Path(path).name)
    write_model_card(final, title, config, metrics, data)
    return final


def _answer_texts(dataset) -> list[str]:
    return [p[0]["content"] + c[0]["content"] for p, c in zip(dataset["prompt"], dataset["completion"])]


def write_model_card(folder: Path, title: str, config: dict, metrics: dict, data: dict) -> Path:
    """A README.md model card: what the model is, what it saw, how it scored."""
    card = folder / "README.md"
    card.write_text(
        f"# {title}\n\nCrystalReasoner checkpoint (safetensors).\n\n"
        f"## Data\n\n```json\n{json.dumps(data, indent=2)}\n```\n\n"
        f"## Config\n\n```json\n{json.dumps(config, indent=2)}\n```\n\n"
        f"## Metrics\n\n```json\n{json.dumps(metrics, indent=2)}\n```\n"
    )
    return card


@dataclass
class SFTStage:
    """Fine-tune on a registered trace set; registers the tokenizer and the checkpoint."""

    config: SFTConfig

    def run(
        self,
        registry: ArtifactRegistry,
        traces_id: str,
        *,
        run_dir: str | Path | None = None,
        resume: bool = True,
    ) -> ArtifactDoc:
        import trl
        from datasets import load_from_disk

        cfg = self.config
        traces = registry.get(traces_id)
        run_dir = Path(run_dir or registry.spec.files_root / "runs" / f"sft-{cfg.run_key(traces_id)}")
        run_dir.mkdir(parents=True, exist_ok=True)
        data = load_from_disk(str(Path(traces.location) / "hf"))
        train = data["train"].select_columns(["prompt", "completion"])
        evaluation = data["val"].select(range(min(cfg.eval_samples, len(data["val"]))))
        evaluation = evaluation.select_columns(["prompt", "completion"])

        tokenizer_dir = run_dir / "tokenizer"
        if tokenizer_dir.exists():  # a resumed run must keep its vocabulary
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:
            tokenizer = build_tokenizer(cfg.model, _answer_texts(train))
            tokenizer.save_pretrained(tokenizer_dir)
        tokenizer_doc = registry.register(
            ArtifactKind.TOKENIZER,
            name=f"tokenizer for {traces.name}",
            config=cfg.model.model_dump(mode="json"),
            parents=[traces_id],
            files=sorted(p for p in tokenizer_dir.iterdir() if p.is_file()),
            location=tokenizer_dir,
            summary={"vocab_size": len(tokenizer)},
        )

        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, tokenizer)
        on_gpu = torch.cuda.is_available()
        last = last_complete_checkpoint(run_dir / "trainer") if resume else None
        warmup = None
        if (cfg.copy_warmup or cfg.count_warmup) and cfg.model.pretrained is None:  # resumed: read back
            warmup = warm_start(
                model.to("cuda" if on_gpu else "cpu"), tokenizer, run_dir / "warmup",
                copy=cfg.copy_warmup, count=cfg.count_warmup,
                codec=codec_config(traces.config),
                seed=cfg.seed, bf16=bf16_autocast(cfg.precision),
            )
        model = apply_lora(model, cfg.model.lora)
        args = trl.SFTConfig(
            output_dir=str(run_dir / "trainer"),
            max_length=cfg.max_length,
            seed=cfg.seed,
            use_cpu=not on_gpu,
            bf16=bf16_autocast(cfg.precision),
            completion_only_loss=True,
            **{**TRL_DEFAULTS, **cfg.trl_args},
        )
        trainer_kwargs = dict(
            model=model,
            args=args,
            train_dataset=train,
            eval_dataset=evaluation,
            processing_class=tokenizer,
            callbacks=[TimeBudget(cfg.max_minutes)],
        )
        rejected = []
        if cfg.rejected_unlikelihood:
            if "rejected" not in data:
                raise ConfigError(
                    f"rejected_unlikelihood is set but trace set {traces_id} has no rejected split "
                    "(crysreas distil writes one)"
                )
            rejected = rejected_tokens(
                tokenizer, data["rejected"]["prompt"], data["rejected"]["completion"], codec_config(traces.config)
            )
        if cfg.copy_unlikelihood or cfg.foreign_unlikelihood or rejected:
            trainer = BlockUnlikelihoodSFTTrainer(
                **trainer_kwargs, copy_unlikelihood=cfg.copy_unlikelihood, foreign_unlikelihood=cfg.foreign_unlikelihood,
                rejected=rejected, rejected_weight=cfg.rejected_unlikelihood, rejected_per_step=cfg.rejected_per_step,
            )
        else:
            trainer = trl.SFTTrainer(**trainer_kwargs)
        started = time.monotonic()
        result = trainer.train(resume_from_checkpoint=last)
        train_seconds = time.monotonic() - started
        eval_metrics = trainer.evaluate()

        metrics = {
            "train_loss": result.training_loss,
            "eval_loss": eval_metrics.get("eval_loss"),
            "global_step": trainer.state.global_step,
            "max_steps": trainer.state.max_steps,
            "epoch": trainer.state.epoch,
            "resumed_from": last,
            "warmup": warmup,
            "train_seconds_this_process": round(train_seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        final = publish_checkpoint(
            trainer, tokenizer, run_dir / "final", f"SFT on {traces.name}", cfg.model_dump(mode="json"),
            metrics, {"traces": traces_id, "traces_summary": traces.summary, "tokenizer": tokenizer_doc.artifact_id},
        )
        return registry.register(
            ArtifactKind.CHECKPOINT,
            name=f"sft {cfg.model.pretrained or cfg.model.arch} on {traces.name}",
            config=cfg.model_dump(mode="json"),
            parents=[traces_id, tokenizer_doc.artifact_id],
            files=sorted(p for p in final.iterdir() if p.is_file()),
            location=final,
            summary=metrics,
        )
