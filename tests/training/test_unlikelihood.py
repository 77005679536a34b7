"""Unlikelihood on copying an earlier atom line: which tokens it penalises, its exact value, and an
SFT run that trains with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from transformers import AutoTokenizer

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.training.sft import SFTConfig, SFTStage
from crystalreasoner.training.tokenizer import BlockTokens
from crystalreasoner.training.unlikelihood import IGNORE, CopyUnlikelihood, copy_negatives

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
    loss, unlikelihood, p_copy = CopyUnlikelihood(tokenizer, weight=0.5)(uniform, labels)
    # the copy digit is one of the ten digits: p = 1/10 among them, whatever the vocabulary
    assert abs(loss.item() - (math.log(vocab) + 0.5 * -math.log(0.9))) < 1e-5
    assert abs(unlikelihood + math.log(0.9)) < 1e-6 and abs(p_copy - 0.1) < 1e-7
    assert abs(CopyUnlikelihood(tokenizer, weight=0.0)(uniform, labels)[0].item() - math.log(vocab)) < 1e-5


def test_a_gradient_step_lowers_the_copy_probability():
    tokenizer = _tokenizer()
    labels = torch.tensor([_labels(tokenizer)])
    (position, token), *_ = copy_negatives(labels[0].tolist(), BlockTokens.of(tokenizer))
    logits = torch.zeros(1, labels.shape[1], len(tokenizer))
    logits[0, position - 1, token] = 8.0  # the model would copy
    logits.requires_grad_(True)
    CopyUnlikelihood(tokenizer, weight=1.0)(logits, labels)[0].backward()
    assert logits.grad[0, position - 1, token] > 0  # descent lowers it
    assert logits.grad[0, position - 1, labels[0, position]] < 0  # and raises the real digit
    (newline,) = tokenizer("\n", add_special_tokens=False)["input_ids"]
    unlikelihood_only = logits.grad[0, position - 1].clone()
    logits.grad = None
    CopyUnlikelihood(tokenizer, weight=0.0)(logits, labels)[0].backward()
    unlikelihood_only -= logits.grad[0, position - 1]
    # the mass the copy loses goes to the other digits, not to ending the line
    assert unlikelihood_only[newline] == 0 and (unlikelihood_only[[t for t in range(len(tokenizer)) if t != token]] <= 0).all()


def test_sft_trains_with_the_copy_unlikelihood(registry, traces_id):
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2, copy_unlikelihood=1.0,
                       trl_args={"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4,
                                 "max_steps": 2, "save_steps": 100})
    doc = SFTStage(config).run(registry, traces_id)
    assert doc.summary["global_step"] == 2 and math.isfinite(doc.summary["eval_loss"])
    history = json.loads((Path(doc.location) / "log_history.json").read_text())
    assert any(entry.get("copy_unlikelihood", 0) > 0 for entry in history)
