"""Does a checkpoint copy the cell the prompt states? A one-minute probe of composition conditioning.

For every held-out prompt that states its cell ("The cell contains Ho2 W2 Cl2 O8."), the true
answer is fed up to ``Cell composition:`` and the model completes the line greedily. The table
gives the share of lines that restate the prompt's counts exactly, and of lines whose first
element is right. It isolates the bottleneck of the small models (copying from the prompt) from
sampling noise and from the structure block, so an SFT recipe can be judged before a full
``crysreas generate`` + ``crysreas evaluate``.
Run: ``.venv/bin/python bench/probe_copy.py <checkpoint-folder>... --traces <trace-set-id>``
(``crysreas artifacts --kind traces`` lists the trace sets; the probe reads their held-out split).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from crystalreasoner.stores import open_registry
from crystalreasoner.training.models import load_checkpoint

COUNTS = re.compile(r"The cell contains ([^.]*)\.")
LINE_START = "Cell composition:"


def copy_rates(folder: str, records: list[dict]) -> tuple[int, float, float]:
    """(prompts probed, exact-copy share, first-element share) for one checkpoint."""
    model, tokenizer = load_checkpoint(folder)
    exact = first = probed = 0
    for record in records:
        stated = COUNTS.search(record["prompt"][0]["content"])
        answer = record["completion"][0]["content"]
        if not stated or LINE_START not in answer:
            continue
        prefix = answer[: answer.index(LINE_START) + len(LINE_START)]
        text = tokenizer.apply_chat_template(record["prompt"], tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text + prefix, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
        line = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]).split("(")[0].split()
        want = stated.group(1).split()
        probed += 1
        exact += line == want
        first += line[:1] == want[:1]
    return probed, exact / max(probed, 1), first / max(probed, 1)


def probe_setup(description: str) -> tuple[argparse.Namespace, list[dict]]:
    """The probes' command line (checkpoint folders, ``--traces``, ``--split``, ``--max-records``) and
    that split's records."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkpoints", nargs="+", help="checkpoint folders")
    parser.add_argument("--traces", required=True, help="trace-set artifact id")
    parser.add_argument("--split", default="val")
    parser.add_argument("--max-records", type=int, help="only the first N records of the split")
    args = parser.parse_args()
    with open_registry() as registry:
        location = Path(registry.get(args.traces).location)
    records = [json.loads(line) for line in (location / f"{args.split}.jsonl").read_text().splitlines()]
    return args, records[: args.max_records]


def probe_table(title: str, columns: list[str]) -> Table:
    """A table with one row per checkpoint folder, then ``columns`` of figures."""
    table = Table(title=title)
    table.add_column("checkpoint", overflow="fold")
    for column in columns:
        table.add_column(column, justify="right")
    return table


def main() -> None:
    args, records = probe_setup(__doc__)
    table = probe_table(
        f"Copying the stated cell, {args.split} prompts of {args.traces[:8]}",
        ["prompts", "exact copy %", "first element %"],
    )
    for folder in args.checkpoints:
        probed, exact, first = copy_rates(folder, records)
        table.add_row(folder, str(probed), f"{100 * exact:.1f}", f"{100 * first:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
