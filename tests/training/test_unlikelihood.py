"""Unlikelihood on copying an earlier atom line, on block-foreign tokens and on the model's own
departures from the written form: which tokens they penalise, their exact values, and an SFT run
that trains with them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import load_from_disk
from transformers import AutoTokenizer

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.data import CodecConfig
from crystalreasoner.errors import ConfigError
from crystalreasoner.stores import ArtifactKind
from crystalreasoner.training.sft import SFTConfig, SFTStage
from crystalreasoner.training.tokenizer import BlockTokens
from crystalreasoner.training.unlikelihood import (
    IGNORE,
    BlockUnlikelihood,
    RejectedToken,
    block_targets,
    copy_negatives,
    foreign_token_ids,
    rejected_tokens,
    rejected_unlikelihood,
)

from .conftest import TINY_MODEL

BLOCK = """<think>
Sites to write: Na1 Cl2.
</think>
<CIF>
P1
4.000 4.000 4.000
90.000 90.000 90.000
Na1 1 0.0000 0.0000 0.0000
Cl2 1 0.0000 0.5000 0.5000
Cl1 1 0.0000 0.5000 0.2500
</CIF>"""


def _tokenizer():
    return AutoTokenizer.from_pretrained(shipped_checkpoint("tiny-cpu-restated"))


def _labels(tokenizer, text=BLOCK):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [IGNORE] * 3 + ids  # a masked prompt in front, as the collator leaves it


def test_the_token_that_would_continue_an_earlier_line_is_the_negative():
    tokenizer = _tokenizer()
    labels = _labels(tokenizer)
    block = BlockTokens.of(tokenizer)
    pieces = block.texts
    negatives = copy_negatives(labels, block)
    text_before = lambda position: tokenizer.decode(labels[3:position]).rsplit("\n", 1)[-1]
    found = [(text_before(p), pieces[labels[p]], pieces[token]) for p, token in negatives]
    # Cl2 leaves Na1 at y's first decimal; Cl1 leaves Na1 there too and Cl2 at z's first decimal.
    # The header lines (space group, lengths, angles) and the trace are not atom lines.
    assert found == [
        ("Cl2 1 0.0000 0.", "5", "0"),
        ("Cl1 1 0.0000 0.", "5", "0"),
        ("Cl1 1 0.0000 0.5000 0.", "2", "5"),
    ]
    assert copy_negatives(labels[:10], block) == []  # no structure block: nothing


def test_loss_is_cross_entropy_plus_weighted_unlikelihood_exactly():
    tokenizer = _tokenizer()
    labels = torch.tensor([_labels(tokenizer)])
    vocab = len(tokenizer)
    uniform = torch.zeros(1, labels.shape[1], vocab)
    loss, logged = BlockUnlikelihood(tokenizer, weight=0.5)(uniform, labels)
    # the copy digit is one of the ten digits: p = 1/10 among them, whatever the vocabulary
    assert abs(loss.item() - (math.log(vocab) + 0.5 * -math.log(0.9))) < 1e-5
    assert abs(logged["copy_unlikelihood"] + math.log(0.9)) < 1e-6 and abs(logged["p_copy"] - 0.1) < 1e-7
    assert abs(BlockUnlikelihood(tokenizer, weight=0.0)(uniform, labels)[0].item() - math.log(vocab)) < 1e-5


def test_a_gradient_step_lowers_the_copy_probability():
    tokenizer = _tokenizer()
    labels = torch.tensor([_labels(tokenizer)])
    (position, token), *_ = copy_negatives(labels[0].tolist(), BlockTokens.of(tokenizer))
    logits = torch.zeros(1, labels.shape[1], len(tokenizer))
    logits[0, position - 1, token] = 8.0  # the model would copy
    logits.requires_grad_(True)
    BlockUnlikelihood(tokenizer, weight=1.0)(logits, labels)[0].backward()
    assert logits.grad[0, position - 1, token] > 0  # descent lowers it
    assert logits.grad[0, position - 1, labels[0, position]] < 0  # and raises the real digit
    (newline,) = tokenizer("\n", add_special_tokens=False)["input_ids"]
    unlikelihood_only = logits.grad[0, position - 1].clone()
    logits.grad = None
    BlockUnlikelihood(tokenizer, weight=0.0)(logits, labels)[0].backward()
    unlikelihood_only -= logits.grad[0, position - 1]
    # the mass the copy loses goes to the other digits, not to ending the line
    assert unlikelihood_only[newline] == 0 and (unlikelihood_only[[t for t in range(len(tokenizer)) if t != token]] <= 0).all()


def test_block_foreign_tokens_and_their_exact_term():
    tokenizer = _tokenizer()
    block = BlockTokens.of(tokenizer)
    foreign = set(foreign_token_ids(block))
    texts = block.texts
    assert block.end_id not in foreign and block.start_id in foreign and tokenizer.eos_token_id in foreign
    assert {t for t, text in enumerate(texts) if "Å" in text or ":" in text} <= foreign
    assert not foreign & {t for t, text in enumerate(texts) if text in ("0", "7", ".", " ", "\n", "Na", "Cl", "P")}
    labels = _labels(tokenizer)
    positions = block_targets(labels, block)
    assert texts[labels[positions[0] - 1]] == "<CIF>" and labels[positions[-1]] == block.end_id
    assert block_targets(labels[:10], block) == []
    uniform = torch.zeros(1, len(labels), len(tokenizer))
    loss, logged = BlockUnlikelihood(tokenizer, weight=0.0, foreign_weight=0.5)(uniform, torch.tensor([labels]))
    share = len(foreign) / len(tokenizer)  # every block position: p(foreign) = that share
    assert abs(logged["p_foreign"] - share) < 1e-6 and "p_copy" not in logged
    assert abs(loss.item() - (math.log(len(tokenizer)) - 0.5 * math.log(1 - share))) < 1e-5


def test_the_rejected_token_is_where_the_models_block_departed():
    tokenizer = _tokenizer()
    prompt = [{"role": "user", "content": "Make NaCl2."}]
    broken = BLOCK.replace("Cl2 1 0.0000 0.5000 0.5000", "Cl2 1 0.0000 0.5000 Å.5000")
    codec = CodecConfig(coord_decimals=4, lattice_decimals=3, site_labels="remaining")
    answers = [[{"role": "assistant", "content": text}] for text in (BLOCK, broken)]
    (rejected,) = rejected_tokens(tokenizer, [prompt, prompt], answers, codec)  # the readable answer has none
    chat = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    written = tokenizer.decode(rejected.context + [rejected.token], skip_special_tokens=False)
    assert (chat + broken).startswith(written) and written.endswith("Å")  # the token is " Å": the space comes with it
    assert "Å" not in tokenizer.decode(rejected.context[-40:])


class _Echo(torch.nn.Module):
    """Logits that predict the current input token again, strongly."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, input_ids, attention_mask, use_cache):
        return type("Out", (), {"logits": self.scale * torch.nn.functional.one_hot(input_ids, self.vocab).float()})


def test_rejected_unlikelihood_reads_each_context_at_its_own_last_position():
    vocab, pad = 12, 0
    batch = [RejectedToken([5, 6, 7], 7), RejectedToken([5, 6], 9)]  # right-padded to three
    term, value, p_mean = rejected_unlikelihood(_Echo(vocab), batch, pad)
    high, low = (math.exp(10) / (math.exp(10) + vocab - 1), 1 / (math.exp(10) + vocab - 1))
    assert abs(p_mean - (high + low) / 2) < 1e-6
    assert abs(term.item() - -(math.log(1 - high) + math.log(1 - low)) / 2) < 1e-4 and value == term.item()


def test_sft_trains_with_the_block_unlikelihoods(registry, traces_id):
    base = registry.get(traces_id)
    data = load_from_disk(f"{base.location}/hf")
    bad = [c[0]["content"].replace("</CIF>", "Volume: 9\n</CIF>") for c in data["train"]["completion"][:3]]
    data["rejected"] = data["train"].select(range(3)).map(
        lambda row, k: {"completion": [{"role": "assistant", "content": bad[k]}]}, with_indices=True
    )
    data.save_to_disk(str(registry.spec.files_root / "with-rejected" / "hf"))
    with_rejected = registry.register(
        ArtifactKind.TRACES, name="with rejected", config=base.config, location=registry.spec.files_root / "with-rejected"
    )
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2, copy_unlikelihood=1.0, foreign_unlikelihood=1.0,
                       rejected_unlikelihood=1.0, rejected_per_step=2,
                       trl_args={"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4,
                                 "max_steps": 2, "save_steps": 100})
    doc = SFTStage(config).run(registry, with_rejected.artifact_id)
    assert doc.summary["global_step"] == 2 and math.isfinite(doc.summary["eval_loss"])
    history = json.loads((Path(doc.location) / "log_history.json").read_text())
    for term in ("copy_unlikelihood", "foreign_unlikelihood", "rejected_unlikelihood"):
        assert any(entry.get(term, 0) > 0 for entry in history), term
    with pytest.raises(ConfigError, match=f"trace set {traces_id} has no rejected split"):
        SFTStage(config).run(registry, traces_id)
