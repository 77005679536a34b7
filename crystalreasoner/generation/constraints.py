"""Composition-constrained decoding: inside the structure block, only the requested elements,
in counts that can close into a whole number of formula units, on lines the codec can read; and
when the prompt states the cell counts, the trace's composition lines say exactly those counts.

The constraint works on text, not on a particular tokenizer: a token is allowed when the line
it extends can still become a line of the block's grammar (``P1``, three lengths, three angles,
then ``<El> 1 x y z`` for an element that still has room; once the block writes site labels,
every line has one, the element's next number: one up, or one down to 1 when the element's
first label was its count), so every finished block parses.
``</CIF>`` is allowed only at a line start where the counts are ``Z`` times the reduced formula.
A thinking block must close before the structure block opens (``</think>`` then ``<CIF>``).
In the thinking block, a line that starts with a forced line's key (``Cell composition:``,
``Elements by electronegativity:``, ``Sites to write:``) must go on as that line: the rest of
the trace (orbits, volume) is then reasoned about the requested cell, not about one the model
made up and that the structure block would contradict. With ``min_distance``, an atom line
that puts its atom closer than that to an earlier atom of the block, an atom line the codec
cannot read, or an angle line that makes no cell, is taken back and drawn again (at most
``max_redraws`` times per sample), so composition forced onto a cell does not pile atoms up and
the block's cell exists.
Off by default: the paper's metrics are unconstrained.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache, reduce
from math import gcd

import regex
import torch
from pymatgen.core import Composition
from transformers import PreTrainedTokenizerBase

from crystalreasoner.data.codec import (
    SPACE_GROUP, STRUCTURE_END, STRUCTURE_START, decode_structure, read_angles, read_site, site_field,
)
from crystalreasoner.errors import CodecError, ConfigError
from crystalreasoner.generation.sampler import MaskResult
from crystalreasoner.traces.prompts import parse_cell_counts
from crystalreasoner.training.tokenizer import BlockTokens
from crystalreasoner.traces.render import (
    THINK_END, THINK_START, composition_lines, sites_to_write_line,
)

_NUMBER = r"-?[0-9]{1,4}(?:\.[0-9]{1,8})?"
_TRIPLE = f"{_NUMBER} {_NUMBER} {_NUMBER}"
#: the block text after <CIF> splits into "", "P1", lengths, angles, then the atom lines; with
#: each line's pattern, how many leading fields are literal text (the rest are numbers)
HEADER_LINES = (("", 0), (SPACE_GROUP, 1), (_TRIPLE, 0), (_TRIPLE, 0))
ATOM_LITERAL_FIELDS = 2  # "<El> 1"
ATOM_LINES_START = len(HEADER_LINES)
#: what a closed thinking block is followed by
AFTER_THINKING = "\n" + STRUCTURE_START


@dataclass(frozen=True)
class CompositionTarget:
    """What one request must write: the reduced formula, ``z`` when fixed, and whole trace lines."""

    reduced: dict[str, int]
    z: int | None = None
    trace_lines: tuple[str, ...] = ()


def _key(line: str) -> str:
    """A forced line's key: its text up to and including the colon."""
    return line[: line.index(":") + 1]


def _shape(line: str, literal_fields: int) -> str:
    """The line with every digit of its numbers written as 0: the grammar cannot tell them apart,
    so masks cache well. The first ``literal_fields`` fields (``P1``, ``<El> 1``) stay."""
    fields = line.split(" ")
    return " ".join(fields[:literal_fields] + [regex.sub(r"[0-9]", "0", f) for f in fields[literal_fields:]])


def _counts_down(numbers: list[int | None]) -> bool:
    """An element written with remaining labels (``Mg2``, ``Mg1``): its first label, above 1,
    was its count."""
    return bool(numbers) and numbers[0] is not None and numbers[0] > 1


def _label_pattern(n: int, numbers: list[int | None], z_options: list[int], labelled: bool) -> str:
    """What may follow the element symbol on its next atom line (``numbers``: the labels its
    lines so far carry): its site label.

    Once a block has written a label, every line carries one (a line without would shift its
    fields). Ascending labels (``Mg1``, ``Mg2``) go on from the element's count; remaining labels
    go one down from the last, so the count they started stays the element's count. A first line
    may start at 1 or at ``n·Z`` for a ``Z`` still possible.
    """
    if _counts_down(numbers):
        choices = {numbers[-1] - 1}
    elif numbers:
        choices = {len(numbers) + 1}
    else:
        choices = {1} | {n * z for z in z_options}
    return f"(?:{'|'.join(str(k) for k in sorted(choices))}){'' if labelled else '?'}"


class CompositionConstraint:
    """Token masks that force the structure block to the requested composition.

    Parameters
    ----------
    tokenizer:
        The model's tokenizer; every token's text is precomputed once.
    max_atoms:
        Largest cell allowed, which bounds the number of formula units ``Z``.
    min_distance:
        Redraw an atom line whose atom is closer than this (Å) to an earlier one, an atom line
        the codec cannot read, and an angle line that makes no cell; None: never.
    max_redraws:
        Redraws allowed per sample, after which lines are kept as written.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_atoms: int = 20,
        min_distance: float | None = None, max_redraws: int = 16,
    ):
        vocab = len(tokenizer)
        block = BlockTokens.of(tokenizer)
        self.texts, self.start_id, self.end_id = block.texts, block.start_id, block.end_id
        self.vocab = vocab
        self.max_atoms = max_atoms
        self.min_distance = min_distance
        self.max_redraws = max_redraws
        self.redraws: Counter[str] = Counter()  # per request id
        self._everything = torch.ones(vocab, dtype=torch.bool)

    @staticmethod
    def target(formula: str, cell_counts: dict[str, int] | None = None) -> CompositionTarget:
        """Reduced integer formula and, when the prompt states cell counts, the fixed ``Z`` and the
        trace lines that state them."""
        counts = {el.symbol: int(n) for el, n in Composition(formula).items()}
        divisor = reduce(gcd, counts.values())
        reduced = {el: n // divisor for el, n in counts.items()}
        if not cell_counts:
            return CompositionTarget(reduced)
        z = next(iter(cell_counts.values())) // reduced[next(iter(cell_counts))]
        lines = (*composition_lines(cell_counts), sites_to_write_line(cell_counts))
        return CompositionTarget(reduced, z, lines)

    @staticmethod
    def request_target(prompt: str, formula: str | None) -> CompositionTarget:
        """The target of one request: its formula and the cell counts its prompt states."""
        if not formula:
            raise ConfigError(f"constrained decoding needs a formula; none found in prompt {prompt!r}")
        return CompositionConstraint.target(formula, parse_cell_counts(prompt))

    def allowed(self, text: str, target: CompositionTarget) -> torch.Tensor:
        """Mask over the vocabulary given everything generated so far (``text``)."""
        start = text.rfind(STRUCTURE_START)
        if start < 0:
            return self._before_block_mask(text, target)
        if STRUCTURE_END in text[start:]:  # closed (a sampler that stops only at EOS goes on)
            return self._everything
        lines = text[start + len(STRUCTURE_START) :].split("\n")
        current, index = lines[-1], len(lines) - 1
        if index < ATOM_LINES_START:
            pattern, literal_fields = HEADER_LINES[index]
            return self._line_mask(pattern, _shape(current, literal_fields), False)
        numbers: dict[str, list[int | None]] = {}  # per element, the labels of its lines
        for line in lines[ATOM_LINES_START:-1]:
            symbol, number = site_field(line.split(" ", 1)[0])
            numbers.setdefault(symbol, []).append(number)
        written = Counter({el: len(labels) for el, labels in numbers.items()})
        reduced, fixed_z = target.reduced, target.z
        counting_down = [el for el in reduced if _counts_down(numbers.get(el, []))]
        chosen_z = fixed_z or next((numbers[el][0] // reduced[el] for el in counting_down), None)
        z_max = chosen_z or max(self.max_atoms // sum(reduced.values()), 1)
        room = tuple(sorted(
            el for el, n in reduced.items()
            if written[el] < n * z_max and not (el in counting_down and numbers[el][-1] == 1)
        ))
        ratios = {written[el] / n for el, n in reduced.items()}
        closes = (
            current == ""
            and len(ratios) == 1
            and set(written) <= set(reduced)
            and (z := ratios.pop()) >= 1
            and z == int(z)
            and (fixed_z is None or z == fixed_z)
        )
        if chosen_z:
            z_options = [chosen_z]
        else:  # a first count may choose any Z that every element's lines so far fit into
            z_options = [z for z in range(1, z_max + 1) if all(written[el] <= n * z for el, n in reduced.items())]
        labelled = any(number is not None for labels in numbers.values() for number in labels)
        sites = "|".join(el + _label_pattern(reduced[el], numbers.get(el, []), z_options, labelled) for el in room)
        atom_line = f"(?:{sites}) 1 {_TRIPLE}" if room else "(?!)"
        return self._line_mask(atom_line, _shape(current, ATOM_LITERAL_FIELDS), closes)

    def _before_block_mask(self, text: str, target: CompositionTarget) -> torch.Tensor:
        """Free text, except: a thinking block closes before ``<CIF>``, then nothing but ``<CIF>``."""
        if THINK_START not in text:
            return self._everything
        end = text.rfind(THINK_END)
        if end >= 0:
            return self._after_thinking_mask(text[end + len(THINK_END) :])
        line = text[text.rfind("\n") + 1 :]
        if target.trace_lines:
            return self._trace_line_mask(line, target.trace_lines)
        return self._thinking_mask()

    @cache  # noqa: B019 - a handful of prefixes of AFTER_THINKING
    def _after_thinking_mask(self, written: str) -> torch.Tensor:
        mask = torch.zeros(self.vocab, dtype=torch.bool)
        for token_id, token_text in enumerate(self.texts):
            candidate = written + token_text
            # the tag whole (one special token), not spelled out of "<", "CIF", ">"
            mask[token_id] = bool(token_text) and (
                candidate == AFTER_THINKING or (AFTER_THINKING.startswith(candidate) and candidate.endswith("\n"))
            )
        return mask

    @cache  # noqa: B019 - one mask
    def _thinking_mask(self) -> torch.Tensor:
        mask = self._everything.clone()
        mask[self.start_id] = mask[self.end_id] = False
        return mask

    def _trace_line_mask(self, line: str, forced: tuple[str, ...]) -> torch.Tensor:
        """Tokens that keep a line that reaches a forced line's key (up to its colon) on that line."""
        if not any(_key(f).startswith(line) or line.startswith(_key(f)) for f in forced):
            return self._thinking_mask()  # most trace lines: no forced line can start here
        return self._forced_line_mask(line, forced)

    @cache  # noqa: B019 - a few line prefixes per prompt; lives with the sampler
    def _forced_line_mask(self, line: str, forced: tuple[str, ...]) -> torch.Tensor:
        mask = self._everything.clone()
        on_forced_line = False
        for forced_line in forced:
            key, full = _key(forced_line), forced_line + "\n"
            if not (key.startswith(line) or line.startswith(key)):
                continue
            on_forced_line |= line.startswith(key)
            for token_id, token_text in enumerate(self.texts):
                candidate = line + token_text
                if candidate.startswith(key) and not (full.startswith(candidate) or candidate.startswith(full)):
                    mask[token_id] = False
        mask[self.end_id] = mask[self.start_id] = False
        return mask

    @cache  # noqa: B019 - keyed by the line's shape (digits are all alike), a few hundred per run
    def _line_mask(self, pattern: str, line: str, may_close: bool) -> torch.Tensor:
        """Tokens after which ``line`` can still become a ``pattern`` line; a token may end the line
        with one newline when the line is then complete."""
        compiled = regex.compile(pattern)
        mask = torch.zeros(self.vocab, dtype=torch.bool)
        for token_id, token_text in enumerate(self.texts):
            if not token_text:
                continue
            candidate = line + token_text
            if candidate.endswith("\n") and candidate.count("\n") == 1:
                mask[token_id] = compiled.fullmatch(candidate[:-1]) is not None
            elif "\n" not in candidate:
                mask[token_id] = compiled.fullmatch(candidate, partial=True) is not None
        mask[self.end_id] = may_close
        return mask

    def redraw_point(self, text: str, ids: list[int]) -> int | None:
        """How many of ``ids`` (which spell ``text``) to keep so that the line just finished is
        drawn again: None unless it is an angle line that makes no cell, an atom line the codec
        cannot read (a field missing or extra, a stray word), or an atom line whose atom is
        closer than ``min_distance`` to an earlier atom."""
        start = text.rfind(STRUCTURE_START)
        if self.min_distance is None or start < 0 or not text.endswith("\n"):
            return None
        lines = text[start + len(STRUCTURE_START) :].split("\n")[:-1]
        if len(lines) < ATOM_LINES_START:
            return None
        try:  # the angle line (the last before the atoms), or an atom line, read alone
            if len(lines) == ATOM_LINES_START:
                read_angles(lines[-1])
            else:
                read_site(len(lines) - 1, lines[-1])
        except CodecError:
            return self._line_start(lines[-1], ids)
        if len(lines) < ATOM_LINES_START + 2:
            return None
        try:  # the block so far, read by the codec as if it ended here
            structure = decode_structure(text[start:] + STRUCTURE_END)
        except CodecError:
            return None
        last = len(structure) - 1  # nearest periodic images
        if min(structure.get_distance(last, i) for i in range(last)) >= self.min_distance:
            return None
        return self._line_start(lines[-1], ids)

    def _line_start(self, line: str, ids: list[int]) -> int | None:
        """How many of ``ids`` come before ``line`` (the last line, with its newline), or None when
        the line does not start on a token boundary."""
        keep, chars = len(ids), len(line) + 1
        while chars > 0 and keep > 0:
            keep -= 1
            chars -= len(self.texts[ids[keep]])
        return keep if chars == 0 and keep > 0 else None  # the line's own tokens, and only those

    def token_mask(self, targets: dict[str, CompositionTarget] | None):
        """A sampler ``token_mask`` for requests whose ids map to their ``CompositionTarget``;
        it also rewinds a sample to redraw an atom line that came too close (``min_distance``) or
        cannot be read, or an angle line that makes no cell. With ``targets`` None it only
        redraws: every token is allowed."""
        texts: dict[str, tuple[int, str]] = {}

        def mask(requests, generated) -> MaskResult:
            rows, rewind = [], {}
            for row, (request, ids) in enumerate(zip(requests, generated)):
                key = request.request_id
                seen, text = texts.get(key, (0, ""))
                if seen > len(ids):  # a rewind, or the id was reused by a new sequence
                    seen, text = 0, ""
                text += "".join(self.texts[i] for i in ids[seen:])
                texts[key] = (len(ids), text)
                keep = self.redraw_point(text, ids) if self.redraws[key] < self.max_redraws else None
                if keep is not None:
                    self.redraws[key] += 1
                    rewind[row] = keep
                    rows.append(self._everything)  # this row samples nothing this step
                else:
                    rows.append(self._everything if targets is None else self.allowed(text, targets[key]))
            return MaskResult(torch.stack(rows), rewind)

        return mask
