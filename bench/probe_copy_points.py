"""Does a checkpoint want to continue an earlier atom line where the real one departs from it?

Teacher-forced on held-out traces, at every point where a real atom line leaves an earlier line
whose coordinates it had followed so far (``copy_negatives``, the points the copy unlikelihood
trains on), the probabilities of the digit that would continue the copy and of the real digit.
A copy probability well above a tenth is the collision habit of the composition-following tiny
models; training with ``copy_unlikelihood`` should lower it.
Run: ``.venv/bin/python bench/probe_copy_points.py <checkpoint-folder>... --traces <trace-set-id>
[--max-records 48]``.
"""

from __future__ import annotations

import statistics

import torch
from rich.console import Console

from crystalreasoner.training.models import load_checkpoint
from crystalreasoner.training.tokenizer import BlockTokens
from crystalreasoner.training.unlikelihood import copy_negatives

from probe_copy import probe_setup, probe_table  # sibling script: bench/ is on the path


def copy_point_probabilities(folder: str, records: list[dict]) -> tuple[list[float], list[float]]:
    """Per copy point: p(copy digit) and p(real digit), over the whole vocabulary."""
    model, tokenizer = load_checkpoint(folder)
    model.eval()
    block = BlockTokens.of(tokenizer)
    copies, reals = [], []
    for record in records:
        text = tokenizer.apply_chat_template(record["prompt"] + record["completion"], tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        points = copy_negatives(ids, block)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        for position, token in points:
            copies.append(probs[position - 1, token].item())
            reals.append(probs[position - 1, ids[position]].item())
    return copies, reals


def main() -> None:
    args, records = probe_setup(__doc__)
    table = probe_table(
        f"Copy points of {len(records)} {args.split} traces of {args.traces[:8]}",
        ["points", "mean p(copy)", "median p(copy)", "mean p(real)"],
    )
    for folder in args.checkpoints:
        copies, reals = copy_point_probabilities(folder, records)
        table.add_row(folder, str(len(copies)), f"{statistics.mean(copies):.3f}",
                      f"{statistics.median(copies):.3f}", f"{statistics.mean(reals):.3f}")
    Console().print(table)


if __name__ == "__main__":
    main()
