"""Token-level unlikelihood against copying an earlier atom line (Welleck et al. 2019).

The composition-conditioned tiny models lose most structures to collisions, and in most of
those two atoms sit on exactly the same coordinates (225 of tiny-cpu-restated's 272 invalid val
samples). Teacher-forced, where a real atom line departs from an earlier line whose coordinates
it had followed so far, that model gives the digit continuing the copy p 0.14 (the real digit
0.20). Cross-entropy only raises the real digit; this also lowers, at each such point, the one
that would have continued the copy. ``SFTConfig.copy_unlikelihood`` weighs it.
The copy digit's probability is taken among the digits only, so the mass it loses goes to another
digit: against the whole vocabulary the model learnt to escape a copy by ending the line early
(``0.\n``), and parsing fell 97.4 -> 94.1 % (README, "Copying an earlier line: unlikelihood").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import trl
from transformers import PreTrainedTokenizerBase

from crystalreasoner.training.tokenizer import BlockTokens

IGNORE = -100


def copy_negatives(ids: Sequence[int], block: BlockTokens) -> list[tuple[int, int]]:
    """``(position, token id)`` pairs: at ``position`` the real text departs from an earlier atom
    line's coordinates, and ``token id`` is what continuing that line would have written.

    Atom lines are the structure block's lines that start with a letter and have at least four
    fields; their coordinates are the last three fields.
    """
    lines = _atom_line_coordinates(ids, block)
    negatives = set()
    for k, line in enumerate(lines):
        for earlier in lines[:k]:
            for here, there in zip(line, earlier):
                if ids[here] != ids[there]:
                    negatives.add((here, ids[there]))
                    break
    return sorted(negatives)


def _atom_line_coordinates(ids, block: BlockTokens) -> list[list[int]]:
    """Positions of each atom line's coordinate tokens, in order."""
    try:
        start = list(ids).index(block.start_id) + 1
    except ValueError:
        return []
    lines, current = [], []
    for position in range(start, len(ids)):
        if ids[position] in (block.end_id, IGNORE):
            break
        if "\n" in block.texts[ids[position]]:
            lines.append(current)
            current = []
        else:
            current.append(position)
    lines.append(current)
    return [coords for line in lines if (coords := _coordinates(line, ids, block.texts))]


def _coordinates(line: list[int], ids, pieces) -> list[int]:
    text = "".join(pieces[ids[p]] for p in line)
    fields = text.split()
    if len(fields) < 4 or not text.lstrip()[:1].isalpha():
        return []
    # the character where the third-from-last field starts, then the tokens from there on
    offset = len(text.rstrip())
    for field in reversed(fields[-3:]):
        offset = text.rindex(field, 0, offset)
    kept, seen = [], 0
    for p in line:
        if seen >= offset:
            kept.append(p)
        seen += len(pieces[ids[p]])
    return kept


class CopyUnlikelihoodSFTTrainer(trl.SFTTrainer):
    """``SFTTrainer`` whose loss is the mean cross-entropy on the labelled tokens plus
    ``copy_unlikelihood`` times the mean of ``-log(1 - p)`` over the batch's copy-continuing
    digits (``p`` among the digits); logged as ``copy_unlikelihood``, and their mean ``p_copy``.
    It computes the full logits itself, so TRL's entropy and token-accuracy metrics are not logged."""

    def __init__(self, *args, copy_unlikelihood: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.copy_loss = CopyUnlikelihood(self.processing_class, copy_unlikelihood)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
        loss, unlikelihood, p_copy = self.copy_loss(outputs.logits, labels, num_items_in_batch)
        mode = "train" if model.training else "eval"
        self._metrics[mode]["copy_unlikelihood"].append(unlikelihood)
        self._metrics[mode]["p_copy"].append(p_copy)
        return (loss, outputs) if return_outputs else loss


class CopyUnlikelihood:
    """The loss itself, apart from the trainer so that it can be checked on hand-made logits."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, weight: float):
        self.weight = weight
        self.block = BlockTokens.of(tokenizer)
        self.digit_ids = [i for i, text in enumerate(self.block.texts) if len(text) == 1 and text.isdigit()]
        self.digit_index = {token: k for k, token in enumerate(self.digit_ids)}

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None):
        """``(loss, unlikelihood term, mean p of the copy tokens)``; the last two as floats."""
        logits = logits[:, :-1].float()
        targets = labels[:, 1:].to(logits.device)
        cross_entropy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                        ignore_index=IGNORE, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
        cross_entropy = cross_entropy / torch.as_tensor(count, device=logits.device).clamp(min=1)
        rows, positions, digits = [], [], []
        for row, row_labels in enumerate(labels.tolist()):
            for position, token in copy_negatives(row_labels, self.block):
                if token in self.digit_index:
                    rows.append(row)
                    positions.append(position - 1)  # the logits one step earlier predict it
                    digits.append(self.digit_index[token])
        if not rows:
            return cross_entropy, 0.0, 0.0
        log_probs = F.log_softmax(logits[rows, positions][:, self.digit_ids], dim=-1)
        p_copy = log_probs[torch.arange(len(rows)), digits].exp()
        unlikelihood = -torch.log1p(-p_copy.clamp(max=1 - 1e-5)).mean()
        return cross_entropy + self.weight * unlikelihood, unlikelihood.item(), p_copy.mean().item()
