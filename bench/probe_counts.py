"""Does a checkpoint write as many atom lines of each element as the cell has? A probe of counting.

The true answer of every held-out record is fed in (teacher forcing) and, at each line break of
the structure block's atom lines, the model's greedy next token is compared with the true one.
The decisions fall into kinds: the first atom line's element, the same element again, a
switch to the next element, the end of the block; with site labels, also the digits of each
element's first label (``count``) and of its later ones (``label``). Copying the prompt makes
the first right; the switches and ends need the written lines counted (or, with remaining
labels, read off the last label), and a wrong one changes the composition. Like
``probe_copy.py`` it judges an SFT recipe without sampling noise.
Run: ``.venv/bin/python bench/probe_counts.py <checkpoint-folder>... --traces <trace-set-id>``
"""

from __future__ import annotations

from collections import Counter

import torch
from probe_copy import probe_setup, probe_table  # sibling script: bench/ is on the path
from rich.console import Console

from crystalreasoner.data.codec import STRUCTURE_END, STRUCTURE_START
from crystalreasoner.training.models import load_checkpoint

KINDS = ("first", "same", "switch", "end", "count", "label")


def decision_counts(folder: str, records: list[dict]) -> tuple[Counter, Counter, int, int]:
    """(right, total) per decision kind, and (blocks with every decision right, blocks)."""
    model, tokenizer = load_checkpoint(folder)
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    start, end = tokenizer.convert_tokens_to_ids([STRUCTURE_START, STRUCTURE_END])
    digits = {i for i in range(len(tokenizer)) if tokenizer.decode([i]).isdigit()}
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
        previous, seen, all_right = None, set(), True
        for i in breaks:
            truth = ids[i + 1]
            kind = "end" if truth == end else "first" if previous is None else "same" if truth == previous else "switch"
            decisions = [(kind, i)]
            # a site label's digits follow the symbol: an element's first label states its count
            label_kind = "count" if truth not in seen else "label"
            j = i + 1
            while j + 1 < len(ids) and ids[j + 1] in digits:
                decisions.append((label_kind, j))
                j += 1
            for decision, position in decisions:
                total[decision] += 1
                right[decision] += predicted[position] == ids[position + 1]
                all_right &= predicted[position] == ids[position + 1]
            previous = truth
            seen.add(truth)
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
