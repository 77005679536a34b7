"""The copy warm-up: a fresh model learns to copy, and SFT runs it once per run folder."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from crystalreasoner.training import copy_warmup as warmup_module
from crystalreasoner.training.copy_warmup import CopyWarmupConfig, copy_accuracy, copy_warmup
from crystalreasoner.training.sft import SFTConfig, SFTStage

from .conftest import TINY_MODEL


class SmallVocabulary:
    """What the warm-up reads from a tokenizer: its size, special ids and end token."""

    all_special_ids = [0, 1, 2]
    eos_token_id = 2

    def __len__(self) -> int:
        return 40


def test_a_fresh_model_learns_to_copy_random_strings():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        intermediate_size=128, max_position_embeddings=256,
    ))
    config = CopyWarmupConfig(max_steps=1500, min_length=4, max_length=12, learning_rate=3e-3,
                              target_accuracy=0.9, check_every=50)
    tokens, separator = torch.arange(3, 40), 2
    before = copy_accuracy(model, config, tokens, separator, seed=123)
    summary = copy_warmup(model, SmallVocabulary(), config)
    after = copy_accuracy(model, config, tokens, separator, seed=123)
    assert before < 0.2  # chance is 1/37
    assert summary["steps"] < config.max_steps and summary["copy_accuracy"] >= 0.9
    assert after >= 0.85  # on strings it was not trained on


def test_sft_runs_the_warmup_once_and_records_it(registry, traces_id, tmp_path, monkeypatch):
    config = SFTConfig(
        model=TINY_MODEL, max_length=512, eval_samples=2,
        copy_warmup=CopyWarmupConfig(max_steps=4, check_every=2, batch_size=4),
        trl_args={"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4,
                  "max_steps": 2, "save_steps": 100},
    )
    run_dir = tmp_path / "run"
    doc = SFTStage(config).run(registry, traces_id, run_dir=run_dir)
    assert doc.summary["copy_warmup"]["steps"] == 4
    assert (run_dir / "copy_warmup" / "model.safetensors").exists()
    assert "copy_warmup" in (run_dir / "final" / "README.md").read_text()

    def no_second_warmup(*args, **kwargs):
        raise AssertionError("the warm-up ran again in a run folder that has it")

    monkeypatch.setattr(warmup_module, "copy_warmup", no_second_warmup)
    again = SFTStage(config).run(registry, traces_id, run_dir=run_dir)
    assert again.summary["copy_warmup"] == doc.summary["copy_warmup"]
