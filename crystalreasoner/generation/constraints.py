"""Composition-constrained decoding: inside the structure block, only the requested elements,
in counts that can close into a whole number of formula units; and when the prompt states the
cell counts, the trace's composition lines say exactly those counts.

The constraint works on text, not on a particular tokenizer: a token is allowed at the start of
an atom line when the line stays a prefix of ``"<El> "`` for an element that still has room.
``</CIF>`` is allowed only at a line start where the counts are ``Z`` times the reduced formula.
In the thinking block, a line that starts with a forced line's key (``Cell composition:``,
``Elements by electronegativity:``) must go on as that line: the rest of the trace (orbits,
volume) is then reasoned about the requested cell, not about one the model made up and that
the structure block would contradict. Numbers are not constrained. Off by default: the paper's
metrics are unconstrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, reduce
from math import gcd

import torch
from pymatgen.core import Composition
from transformers import PreTrainedTokenizerBase

from crystalreasoner.data.codec import STRUCTURE_END, STRUCTURE_START
from crystalreasoner.traces.render import THINK_START, composition_lines

ATOM_LINES_START = 4  # block text after <CIF> splits into "", "P1", lengths, angles, atoms...


@dataclass(frozen=True)
class CompositionTarget:
    """What one request must write: the reduced formula, ``z`` when fixed, and whole trace lines."""

    reduced: dict[str, int]
    z: int | None = None
    trace_lines: tuple[str, ...] = ()


def _key(line: str) -> str:
    """A forced line's key: its text up to and including the colon."""
    return line[: line.index(":") + 1]


class CompositionConstraint:
    """Token masks that force the structure block to the requested composition.

    Parameters
    ----------
    tokenizer:
        The model's tokenizer; every token's text is precomputed once.
    max_atoms:
        Largest cell allowed, which bounds the number of formula units ``Z``.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_atoms: int = 20):
        vocab = len(tokenizer)
        self.texts = [tokenizer.decode([i], skip_special_tokens=False) for i in range(vocab)]
        self.start_id = tokenizer.convert_tokens_to_ids(STRUCTURE_START)
        self.end_id = tokenizer.convert_tokens_to_ids(STRUCTURE_END)
        self.vocab = vocab
        self.max_atoms = max_atoms
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
        return CompositionTarget(reduced, z, composition_lines(cell_counts))

    def allowed(self, text: str, target: CompositionTarget) -> torch.Tensor:
        """Mask over the vocabulary given everything generated so far (``text``)."""
        start = text.rfind(STRUCTURE_START)
        if start < 0:
            if target.trace_lines and THINK_START in text:
                return self._trace_line_mask(text[text.rfind("\n") + 1 :], target.trace_lines)
            return self._everything
        lines = text[start + len(STRUCTURE_START) :].split("\n")
        if len(lines) - 1 < ATOM_LINES_START:
            return self._no_end_yet()
        written: dict[str, int] = {}
        for line in lines[ATOM_LINES_START:-1]:
            symbol = line.split(" ", 1)[0]
            written[symbol] = written.get(symbol, 0) + 1
        current = lines[-1]
        if " " in current:  # the element of this line is written; coordinates are free
            return self._no_end_yet()
        reduced, fixed_z = target.reduced, target.z
        per_unit = sum(reduced.values())
        z_max = fixed_z or max(self.max_atoms // per_unit, 1)
        room = tuple(sorted(el for el, n in reduced.items() if written.get(el, 0) < n * z_max))
        ratios = {written.get(el, 0) / n for el, n in reduced.items()}
        closes = (
            len(ratios) == 1
            and set(written) <= set(reduced)
            and (z := ratios.pop()) >= 1
            and z == int(z)
            and (fixed_z is None or z == fixed_z)
        )
        return self._line_start_mask(current, room, closes and current == "")

    def _trace_line_mask(self, line: str, forced: tuple[str, ...]) -> torch.Tensor:
        """Tokens that keep a line that reaches a forced line's key (up to its colon) on that line."""
        if not any(_key(f).startswith(line) or line.startswith(_key(f)) for f in forced):
            return self._everything  # most trace lines: no forced line can start here
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
        mask[self.end_id] = False
        if on_forced_line:
            mask[self.start_id] = False
        return mask

    def _no_end_yet(self) -> torch.Tensor:
        mask = self._everything.clone()
        mask[self.end_id] = False
        return mask

    @cache  # noqa: B019 - a handful of (prefix, elements) keys per prompt; lives with the sampler
    def _line_start_mask(self, prefix: str, room: tuple[str, ...], may_close: bool) -> torch.Tensor:
        mask = torch.zeros(self.vocab, dtype=torch.bool)
        targets = [f"{el} " for el in room]
        for token_id, token_text in enumerate(self.texts):
            line = prefix + token_text
            if token_text and any(t.startswith(line) or line.startswith(t) for t in targets):
                mask[token_id] = True
        mask[self.end_id] = may_close
        return mask

    def token_mask(self, targets: dict[str, CompositionTarget]):
        """A sampler ``token_mask`` for requests whose ids map to their ``CompositionTarget``."""
        texts: dict[str, tuple[int, str]] = {}

        def mask(requests, generated) -> torch.Tensor:
            rows = []
            for request, ids in zip(requests, generated):
                seen, text = texts.get(request.request_id, (0, ""))
                if seen > len(ids):  # the id was reused by a new sequence
                    seen, text = 0, ""
                text += "".join(self.texts[i] for i in ids[seen:])
                texts[request.request_id] = (len(ids), text)
                rows.append(self.allowed(text, targets[request.request_id]))
            return torch.stack(rows)

        return mask
