"""SFT through TRL's SFTTrainer: checkpoints, resume after a kill, LoRA on a pretrained folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from crystalreasoner.stores import ArtifactKind
from crystalreasoner.training import sft
from crystalreasoner.training.models import bf16_autocast, load_checkpoint
from crystalreasoner.training.sft import SFTConfig, SFTStage
from crystalreasoner.training.tokenizer import EOS, STRUCTURE_TOKENS

from .conftest import TINY_MODEL

TRL_FAST = {"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4}


def test_sft_registers_a_safetensors_checkpoint_with_card(registry, traces_id):
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                       trl_args={**TRL_FAST, "max_steps": 3, "save_steps": 100})
    doc = SFTStage(config).run(registry, traces_id)
    folder = Path(doc.location)
    assert doc.kind == ArtifactKind.CHECKPOINT
    assert (folder / "model.safetensors").exists() and not list(folder.glob("*.bin"))
    assert load_file(folder / "model.safetensors")  # readable without pickle
    assert "## Metrics" in (folder / "README.md").read_text()
    assert doc.summary["global_step"] == 3 and doc.summary["eval_loss"] > 0
    kinds = [d.kind for d in registry.lineage(doc.artifact_id)]
    assert set(kinds) == {"traces", "tokenizer", "dataset"}
    model, tokenizer = load_checkpoint(folder)
    assert all(len(tokenizer(t, add_special_tokens=False)["input_ids"]) == 1 for t in STRUCTURE_TOKENS)
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], tokenize=False
    )
    assert chat.endswith("y" + EOS)


RUN_SCRIPT = """
import sys
from crystalreasoner.stores import open_registry
from crystalreasoner.training.sft import SFTConfig, SFTStage
config = SFTConfig.model_validate_json(sys.argv[1])
with open_registry("default") as registry:
    SFTStage(config).run(registry, sys.argv[2], run_dir=sys.argv[3])
"""


def test_killed_run_resumes_from_its_last_checkpoint(registry, traces_id, tmp_path):
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                       trl_args={**TRL_FAST, "max_steps": 40, "save_steps": 5})
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, config.model_dump_json(), traces_id, str(run_dir)],
        env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not list((run_dir / "trainer").glob("checkpoint-10")) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "final").exists(), "the run finished before it could be killed"
    # a kill during a save leaves a folder without trainer_state.json (written last): skipped
    complete = (run_dir / "trainer").glob("checkpoint-*/trainer_state.json")
    checkpoints = sorted(int(p.parent.name.split("-")[1]) for p in complete)
    assert checkpoints and checkpoints[-1] < 39
    (run_dir / "trainer" / "checkpoint-39").mkdir()
    (run_dir / "trainer" / "checkpoint-39" / "model.safetensors").write_bytes(b"")

    doc = SFTStage(config).run(registry, traces_id, run_dir=run_dir)
    assert doc.summary["resumed_from"].endswith(f"checkpoint-{checkpoints[-1]}")
    assert doc.summary["global_step"] == 40
    history = json.loads((run_dir / "final" / "log_history.json").read_text())
    logged_steps = [h["step"] for h in history if "loss" in h]
    # history restored from the checkpoint plus the resumed steps: each step logged exactly once
    assert logged_steps == list(range(1, 41))


def test_lora_on_a_pretrained_model_folder(registry, traces_id, tmp_path):
    """The same code path fine-tunes a pretrained-style folder (built here; no downloads)."""
    base = tmp_path / "pretrained"
    tokenizer = AutoTokenizer.from_pretrained(  # reuse a trained BPE as "the pretrained tokenizer"
        SFTStage(SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2,
                           trl_args={**TRL_FAST, "max_steps": 1}))
        .run(registry, traces_id).location
    )
    tokenizer.save_pretrained(base)
    LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, pad_token_id=tokenizer.pad_token_id,
    )).save_pretrained(base)
    config = SFTConfig(
        model={"pretrained": str(base), "lora": {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}},
        max_length=512, eval_samples=2, trl_args={**TRL_FAST, "max_steps": 2, "learning_rate": 1e-3},
    )
    doc = SFTStage(config).run(registry, traces_id)
    folder = Path(doc.location)
    assert (folder / "adapter_config.json").exists()
    assert (folder / "adapter_model.safetensors").exists()
    model, _ = load_checkpoint(folder)  # adapters merged into the base weights
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_bf16_precision_trains_under_cpu_autocast_and_saves_fp32(registry, traces_id, monkeypatch):
    autocast_seen = []
    build = sft.build_model

    def build_and_watch(*args, **kwargs):
        model = build(*args, **kwargs)
        # a submodule: accelerate wraps the model's forward, so the model's own hook runs outside
        embeddings = model.get_input_embeddings()
        embeddings.register_forward_pre_hook(lambda *_: autocast_seen.append(torch.is_autocast_enabled("cpu")))
        return model

    monkeypatch.setattr(sft, "build_model", build_and_watch)
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2, precision="bf16",
                       trl_args={**TRL_FAST, "max_steps": 2, "save_steps": 100})
    doc = SFTStage(config).run(registry, traces_id)
    assert autocast_seen and all(autocast_seen)
    weights = load_file(Path(doc.location) / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    assert doc.summary["eval_loss"] > 0


def test_auto_precision_keeps_fp32_on_a_cpu():
    assert bf16_autocast("fp32") is False and bf16_autocast("bf16") is True
    if not torch.cuda.is_available():
        assert bf16_autocast("auto") is False
