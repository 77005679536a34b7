"""Token-level unlikelihood inside the structure block (Welleck et al. 2019): against copying an
earlier atom line and, optionally, against tokens a block never contains.

The composition-conditioned tiny models lose most structures to collisions, and in most of
those two atoms sit on exactly the same coordinates (225 of tiny-cpu-restated's 272 invalid val
samples). Teacher-forced, where a real atom line departs from an earlier line whose coordinates
it had followed so far, that model gives the digit continuing the copy p 0.14 (the real digit
0.20). Cross-entropy only raises the real digit; this also lowers, at each such point, the one
that would have continued the copy. ``SFTConfig.copy_unlikelihood`` weighs it.
The copy digit's probability is taken among the digits only, so the mass it loses goes to another
digit: against the whole vocabulary the model learnt to escape a copy by ending the line early
(``0.\n``), and parsing fell 97.4 -> 94.1 % (README, "Copying an earlier line: unlikelihood").

A second, optional term (``SFTConfig.foreign_unlikelihood``) lowers, at every labelled position
inside the block, the total probability of tokens a block never contains: a quarter of the
parse failures of tiny-cpu-unlikelihood are trace text written into a coordinate (``0.45 Å.53``).
Measured no better (one epoch at 1e-4 with it at 1.0: parse 96.4 -> 96.1 %, paired -0.3 ± 0.5):
that probability is ~3e-5 per block position teacher-forced, so the term hardly moves the weights.

A third (``SFTConfig.rejected_unlikelihood``) works on the model's own mistakes instead of the
data's contexts: for answers it wrote that the codec cannot read (a distilled trace set's
``rejected`` split), the token where the block departed from the written form (``54`` where an
element symbol belongs, ``Volume:`` as an atom line) is lowered in the context the model wrote
it in, a few such contexts per step. Measured (README, "The model's own mistakes"): on the same
distilled data it cut the parse failures with a departure from 43 to 26 and from 33 to 14 of
1,968 val samples (parse +0.9 ± 0.4 and +0.6 ± 0.5 against the exact controls); the shipped
tiny-cpu-rejected was trained with it.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import trl
from transformers import PreTrainedTokenizerBase

from crystalreasoner.data.codec import CodecConfig, first_departure
from crystalreasoner.training.tokenizer import BlockTokens

IGNORE = -100

#: what the lines of a structure block are written with (element symbols, numbers, P1)
BLOCK_CHARACTERS = frozenset(string.ascii_letters + string.digits + " .-\n")


def foreign_token_ids(block: BlockTokens) -> list[int]:
    """Tokens that cannot occur inside a structure block: a character outside ``BLOCK_CHARACTERS``
    (the closing tag excepted) or no text at all (special tokens such as the end of text)."""
    return [
        token for token, text in enumerate(block.texts)
        if token != block.end_id and (not text or not set(text) <= BLOCK_CHARACTERS)
    ]


def block_targets(ids: Sequence[int], block: BlockTokens) -> list[int]:
    """Positions of the labelled tokens after the block's opening tag, the closing tag included."""
    try:
        start = list(ids).index(block.start_id) + 1
    except ValueError:
        return []
    positions = []
    for position in range(start, len(ids)):
        if ids[position] == IGNORE:
            break
        positions.append(position)
        if ids[position] == block.end_id:
            break
    return positions


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
    positions = block_targets(ids, block)
    if not positions:
        return []
    lines, current = [], []
    for position in positions:
        if ids[position] == block.end_id:
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


@dataclass(frozen=True)
class RejectedToken:
    """Where one of the model's own answers went wrong: the prompt and answer up to there, and
    the token it wrote next."""

    context: list[int]
    token: int


def rejected_tokens(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[list[dict[str, str]]],
    completions: Sequence[list[dict[str, str]]],
    codec: CodecConfig,
) -> list[RejectedToken]:
    """The departure token of each answer whose block departs from the written form, in the
    context the sampler gave the model (the chat prompt with its generation prompt)."""
    rejected = []
    for prompt, completion in zip(prompts, completions, strict=True):
        text = completion[0]["content"]
        departure = first_departure(text, codec)
        if departure is None:
            continue
        chat = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        context = tokenizer(chat, add_special_tokens=False)["input_ids"]
        answer = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        index = next(k for k, (_, end) in enumerate(answer["offset_mapping"]) if end > departure)
        rejected.append(RejectedToken(context + answer["input_ids"][:index], answer["input_ids"][index]))
    return rejected


def rejected_unlikelihood(model, batch: Sequence[RejectedToken], pad_id: int) -> tuple[torch.Tensor, float, float]:
    """The mean of ``-log(1 - p)`` over ``batch``, ``p`` the model's probability of each
    rejected token after its context (right-padded, so positions are unchanged)."""
    lengths = torch.tensor([len(r.context) for r in batch])
    ids = torch.full((len(batch), int(lengths.max())), pad_id)
    for row, r in enumerate(batch):
        ids[row, : len(r.context)] = torch.tensor(r.context)
    mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    device = next(model.parameters()).device
    logits = model(input_ids=ids.to(device), attention_mask=mask.long().to(device), use_cache=False).logits
    last = logits[torch.arange(len(batch)), (lengths - 1).to(device)].float()
    tokens = torch.tensor([r.token for r in batch], device=device)
    return _unlikelihood(F.log_softmax(last, dim=-1)[torch.arange(len(batch)), tokens].exp())


class BlockUnlikelihoodSFTTrainer(trl.SFTTrainer):
    """``SFTTrainer`` whose loss is ``BlockUnlikelihood``'s, plus, on training steps,
    ``rejected_weight`` times ``rejected_unlikelihood`` on the next ``rejected_per_step`` of
    ``rejected`` (a shuffled cycle); its terms are logged (``copy_unlikelihood``, ``p_copy``,
    ``foreign_unlikelihood``, ``p_foreign``, ``rejected_unlikelihood``, ``p_rejected``).
    It computes the full logits itself, so TRL's entropy and token-accuracy metrics are not logged."""

    def __init__(
        self,
        *args,
        copy_unlikelihood: float,
        foreign_unlikelihood: float = 0.0,
        rejected: Sequence[RejectedToken] = (),
        rejected_weight: float = 0.0,
        rejected_per_step: int = 8,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.block_loss = BlockUnlikelihood(self.processing_class, copy_unlikelihood, foreign_unlikelihood)
        self.rejected_weight = rejected_weight if rejected else 0.0
        self.rejected_per_step = rejected_per_step
        self._rejected = _shuffled_cycle(list(rejected), self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
        loss, logged = self.block_loss(outputs.logits, labels, num_items_in_batch)
        if model.training and self.rejected_weight:
            batch = list(itertools.islice(self._rejected, self.rejected_per_step))
            term, logged["rejected_unlikelihood"], logged["p_rejected"] = rejected_unlikelihood(
                model, batch, self.processing_class.pad_token_id
            )
            loss = loss + self.rejected_weight * term
        mode = "train" if model.training else "eval"
        for name, value in logged.items():
            self._metrics[mode][name].append(value)
        return (loss, outputs) if return_outputs else loss


class BlockUnlikelihood:
    """The mean cross-entropy on the labelled tokens, plus ``weight`` times the mean of
    ``-log(1 - p)`` over the batch's copy-continuing digits (``p`` among the digits), plus
    ``foreign_weight`` times the mean of ``-log(1 - p)`` over the block's positions (``p`` the
    total probability of ``foreign_token_ids``). Apart from the trainer so that it can be checked
    on hand-made logits."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, weight: float, foreign_weight: float = 0.0):
        self.weight = weight
        self.foreign_weight = foreign_weight
        self.block = BlockTokens.of(tokenizer)
        self.digit_ids = [i for i, text in enumerate(self.block.texts) if len(text) == 1 and text.isdigit()]
        self.digit_index = {token: k for k, token in enumerate(self.digit_ids)}
        self.foreign_ids = foreign_token_ids(self.block)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None):
        """``(loss, {term name: float})``: each term's value and the mean ``p`` it was taken on."""
        logits = logits[:, :-1].float()
        targets = labels[:, 1:].to(logits.device)
        cross_entropy = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                        ignore_index=IGNORE, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
        cross_entropy = cross_entropy / torch.as_tensor(count, device=logits.device).clamp(min=1)
        loss, logged = cross_entropy, {}
        if self.weight:
            copy_term, logged["copy_unlikelihood"], logged["p_copy"] = self._copy_term(logits, labels)
            loss = loss + self.weight * copy_term
        if self.foreign_weight:
            foreign_term, logged["foreign_unlikelihood"], logged["p_foreign"] = self._foreign_term(logits, labels)
            loss = loss + self.foreign_weight * foreign_term
        return loss, logged

    def _copy_term(self, logits: torch.Tensor, labels: torch.Tensor):
        points = [
            (row, position, self.digit_index[token])
            for row, row_labels in enumerate(labels.tolist())
            for position, token in copy_negatives(row_labels, self.block)
            if token in self.digit_index
        ]
        if not points:
            return logits.new_zeros(()), 0.0, 0.0
        log_probs = F.log_softmax(_predicting(logits, points)[:, self.digit_ids], dim=-1)
        digits = [digit for _, _, digit in points]
        return _unlikelihood(log_probs[torch.arange(len(points)), digits].exp())

    def _foreign_term(self, logits: torch.Tensor, labels: torch.Tensor):
        points = [
            (row, position)
            for row, row_labels in enumerate(labels.tolist())
            for position in block_targets(row_labels, self.block)
        ]
        if not points:
            return logits.new_zeros(()), 0.0, 0.0
        log_probs = F.log_softmax(_predicting(logits, points), dim=-1)
        return _unlikelihood(torch.logsumexp(log_probs[:, self.foreign_ids], dim=-1).exp())


def _shuffled_cycle(items: list, seed: int) -> Iterator:
    """The items in a new random order on each pass, forever (nothing when there are none)."""
    rng = random.Random(seed)
    while items:
        yield from rng.sample(items, len(items))


def _predicting(logits: torch.Tensor, points: list[tuple]) -> torch.Tensor:
    """The logits that predict the token at each ``(row, position, ...)``: one step earlier."""
    return logits[[point[0] for point in points], [point[1] - 1 for point in points]]


def _unlikelihood(p: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """The mean of ``-log(1 - p)``, and it and the mean ``p`` as floats for the log."""
    term = -torch.log1p(-p.clamp(max=1 - 1e-5)).mean()
    return term, term.item(), p.mean().item()
