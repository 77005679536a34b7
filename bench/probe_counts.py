"""Does a checkpoint write as many atom lines of each element as the cell has? A probe of counting.

The true answer of every held-out record is fed in (teacher forcing) and, at each line break of
the structure block's atom lines, the model's greedy next token is compared with the true one.
The decisions fall into four kinds: the first atom line's element, the same element again,
a switch to the next element, and the end of the block. Copying the prompt makes the first right;
only counting the written lines makes the switches and ends right, and a wrong one changes the
composition. Like ``probe_copy.py`` it judges an SFT recipe without sampling noise.
Run: ``.venv/bin/python bench/probe_counts.py <checkpoint-folder>... --traces <trace-set-id>``
"""

from __future__ import annotations

from collections import Counter

import torch
from probe_copy import probe_setup, probe_table  # sibling script: bench/ is on the path
from rich.console import Console

from crystalreasoner.data.codec import STRUCTURE_END, STRUCTURE_START
from crystalreasoner.training.models import load_checkpoint

KINDS = ("first", "same", "switch", "end")


def decision_counts(folder: str, records: list[dict]) -> tuple[Counter, Counter, int, int]:
    """(right, total) per decision kind, and (blocks with every decision right, blocks)."""
    model, tokenizer = load_checkpoint(folder)
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    start, end = tokenizer.convert_tokens_to_ids([STRUCTURE_START, STRUCTURE_END])
    right, total = Counter(), Counter()
    whole = blocks = 0
    for record in records:
        ids = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=True)
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        if start not in ids:
            continue
        breaks = [i for i in range(ids.index(start), len(ids) - 1) if ids[i] == newline][3:]
        with torch.no_grad():
            predicted = model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
        previous, all_right = None, True
        for i in breaks:
            truth = ids[i + 1]
            kind = "end" if truth == end else "first" if previous is None else "same" if truth == previous else "switch"
            total[kind] += 1
            right[kind] += predicted[i] == truth
            all_right &= predicted[i] == truth
            previous = truth
        blocks += 1
        whole += all_right
    return right, total, whole, blocks


def main() -> None:
    args, records = probe_setup(__doc__)
    table = probe_table(
        f"Atom-line decisions, teacher-forced, {args.split} answers of {args.traces[:8]}",
        [*(f"{kind} %" for kind in KINDS), "whole blocks %"],
    )
    for folder in args.checkpoints:
        right, total, whole, blocks = decision_counts(folder, records)
        cells = [f"{100 * right[k] / total[k]:.1f} ({total[k]})" if total[k] else "-" for k in KINDS]
        table.add_row(folder, *cells, f"{100 * whole / max(blocks, 1):.1f} ({blocks})")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
