"""The warm-ups: a fresh model learns to copy, random cells are scored on their element decisions,
and SFT runs each warm-up once per run folder."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import random

from crystalreasoner.data.codec import CodecConfig, decode_structure
from crystalreasoner.training import warmup as warmup_module
from crystalreasoner.training.warmup import (
    CopyWarmupConfig,
    CountWarmupConfig,
    _copy_batch,
    copy_warmup,
    count_example,
    masked_accuracy,
    single_token_elements,
)
from crystalreasoner.training.sft import SFTConfig, SFTStage
from crystalreasoner.training.tokenizer import train_bpe_tokenizer
from crystalreasoner.traces.render import parse_trace_claims

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
    fresh = _copy_batch(config, torch.arange(3, 40), 2, torch.Generator().manual_seed(123), 32)
    before = masked_accuracy(model, fresh, whole_rows=False)
    summary = copy_warmup(model, SmallVocabulary(), config)
    after = masked_accuracy(model, fresh, whole_rows=False)
    assert before < 0.2  # chance is 1/37
    assert summary["steps"] < config.max_steps and summary["accuracy"] >= 0.9
    assert after >= 0.85  # on strings it was not trained on


def test_a_random_cell_is_written_as_the_traces_write_one_and_scores_each_element_decision():
    lines = [f"{el} 1 0.1250 0.5000 0.7500\nElements by electronegativity: {el}, O." for el in ("Na", "Mg", "Ti", "Ba", "O")]
    tokenizer = train_bpe_tokenizer(lines * 20, vocab_size=300)
    elements = single_token_elements(tokenizer)
    assert {"Na", "Mg", "Ti", "Ba", "O"} <= set(elements) and elements.index("Ba") < elements.index("O")
    config = CountWarmupConfig(max_atoms=6)
    for seed in range(20):
        ids, mask = count_example(config, tokenizer, elements, CodecConfig(4, 3), random.Random(seed))
        text = tokenizer.decode(ids)
        stated = parse_trace_claims(text).composition
        structure = decode_structure(text[text.index("<CIF>"):])
        assert structure.composition.as_dict() == stated and sum(stated.values()) <= 6
        decisions = [tokenizer.decode([ids[i + 1]]) for i, scored in enumerate(mask) if scored]
        assert decisions == [site.specie.symbol for site in structure] + ["</CIF>"]


def test_sft_runs_each_warmup_once_and_records_it(registry, traces_id, tmp_path, monkeypatch):
    config = SFTConfig(
        model=TINY_MODEL, max_length=512, eval_samples=2,
        copy_warmup=CopyWarmupConfig(max_steps=4, check_every=2, batch_size=4),
        count_warmup=CountWarmupConfig(max_steps=3, check_every=2, batch_size=2),
        trl_args={"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4,
                  "max_steps": 2, "save_steps": 100},
    )
    run_dir = tmp_path / "run"
    doc = SFTStage(config).run(registry, traces_id, run_dir=run_dir)
    assert doc.summary["warmup"]["copy"]["steps"] == 4 and doc.summary["warmup"]["count"]["steps"] == 3
    assert (run_dir / "warmup" / "count" / "model.safetensors").exists()
    assert "warmup" in (run_dir / "final" / "README.md").read_text()

    def no_second_warmup(*args, **kwargs):
        raise AssertionError("a warm-up ran again in a run folder that has it")

    monkeypatch.setattr(warmup_module, "copy_warmup", no_second_warmup)
    monkeypatch.setattr(warmup_module, "count_warmup", no_second_warmup)
    again = SFTStage(config).run(registry, traces_id, run_dir=run_dir)
    assert again.summary["warmup"] == doc.summary["warmup"]
