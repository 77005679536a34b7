"""Unlikelihood on copying an earlier atom line: which tokens it penalises, its exact value, and an
SFT run that trains with it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from transformers import AutoTokenizer

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.training.sft import SFTConfig, SFTStage
from crystalreasoner.training.unlikelihood import IGNORE, copy_negatives, copy_unlikelihood_loss

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
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    start, end = (tokenizer.convert_tokens_to_ids(t) for t in ("<CIF>", "</CIF>"))
    negatives = copy_negatives(labels, pieces, start, end)
    text_before = lambda position: tokenizer.decode(labels[3:position]).rsplit("\n", 1)[-1]
    found = [(text_before(p), pieces[labels[p]], pieces[token]) for p, token in negatives]
    # Cl2 leaves Na1 at y's first decimal; Cl1 leaves Na1 there too and Cl2 at z's first decimal.
    # The header lines (space group, lengths, angles) and the trace are not atom lines.
    assert found == [
        ("Cl2 1 0.0000 0.", "5", "0"),
        ("Cl1 1 0.0000 0.", "5", "0"),
        ("Cl1 1 0.0000 0.5000 0.", "2", "5"),
    ]
    assert copy_negatives(labels[:10], pieces, start, end) == []  # no structure block: nothing


def test_loss_is_cross_entropy_plus_weighted_unlikelihood_exactly():
    tokenizer = _tokenizer()
    labels = torch.tensor([_labels(tokenizer)])
    vocab = len(tokenizer)
    uniform = SimpleNamespace(logits=torch.zeros(1, labels.shape[1], vocab))
    loss = copy_unlikelihood_loss(tokenizer, weight=0.5)
    expected = math.log(vocab) + 0.5 * -math.log(1 - 1 / vocab)
    assert abs(loss(uniform, labels).item() - expected) < 1e-5
    assert abs(copy_unlikelihood_loss(tokenizer, weight=0.0)(uniform, labels).item() - math.log(vocab)) < 1e-5


def test_a_gradient_step_lowers_the_copy_probability():
    tokenizer = _tokenizer()
    labels = torch.tensor([_labels(tokenizer)])
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    start, end = (tokenizer.convert_tokens_to_ids(t) for t in ("<CIF>", "</CIF>"))
    (position, token), *_ = copy_negatives(labels[0].tolist(), pieces, start, end)
    logits = torch.zeros(1, labels.shape[1], len(tokenizer))
    logits[0, position - 1, token] = 8.0  # the model would copy
    logits.requires_grad_(True)
    copy_unlikelihood_loss(tokenizer, weight=1.0)(SimpleNamespace(logits=logits), labels).backward()
    assert logits.grad[0, position - 1, token] > 0  # descent lowers it
    assert logits.grad[0, position - 1, labels[0, position]] < 0  # and raises the real digit


def test_sft_trains_with_the_copy_unlikelihood(registry, traces_id):
    config = SFTConfig(model=TINY_MODEL, max_length=512, eval_samples=2, copy_unlikelihood=1.0,
                       trl_args={"logging_steps": 1, "eval_steps": 1000, "per_device_train_batch_size": 4,
                                 "max_steps": 2, "save_steps": 100})
    doc = SFTStage(config).run(registry, traces_id)
    assert doc.summary["global_step"] == 2 and math.isfinite(doc.summary["eval_loss"])
