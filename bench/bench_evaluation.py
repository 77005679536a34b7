"""Evaluation throughput: cheap checks, novelty matching, MLIP relaxations, E_hull look-ups.

Run: ``.venv/bin/python bench/bench_evaluation.py [--novelty-samples 1000] [--relax 12]``.
Relaxations run one structure at a time and as one lockstep batch (``relax_many``), same structures.
Novelty is the worst case: every sample is a slightly perturbed bundled crystal, so each one
has bucket mates and needs real ``StructureMatcher`` fits against the whole bundled set.
"""

from __future__ import annotations

import argparse
import random
import time

from rich.console import Console
from rich.table import Table

from crystalreasoner.config import load_config
from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.evaluation.hull import BundledMPReference
from crystalreasoner.evaluation.metrics import cheap_metrics
from crystalreasoner.evaluation.mlip import MLIPConfig, calculator_for, relax, relax_many
from crystalreasoner.evaluation.novelty import StructureIndex, novelty
from crystalreasoner.generation.stage import GeneratedSample, parse_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--novelty-samples", type=int, default=1000)
    parser.add_argument("--relax", type=int, default=12, help="structures per MLIP preset")
    args = parser.parse_args()
    mp20 = load_dataset("mp20-mini")
    everything = mp20.records() + load_dataset("mp-binary-elastic").records()
    held_out = mp20.records("test") + mp20.records("val")
    rows = []

    samples = [
        parse_sample(GeneratedSample(i, 0, "p", r.formula, None, "conditional", {}, encode_structure(r.structure), "stop", 0))
        for i, r in enumerate(held_out)
    ]
    start = time.perf_counter()
    for sample in samples:
        cheap_metrics(sample)
    seconds = time.perf_counter() - start
    rows.append(("cheap checks", len(samples), seconds, f"{len(samples) / seconds:.0f} structures/s"))

    rng = random.Random(0)
    queries = []
    for record in rng.choices(everything, k=args.novelty_samples):
        structure = record.structure.copy()
        structure.perturb(0.02)
        queries.append(structure)
    start = time.perf_counter()
    index = StructureIndex(r.structure for r in everything)
    novel = novelty(queries, index)
    seconds = time.perf_counter() - start
    rows.append((
        f"novelty vs {len(index)} bundled crystals", len(queries), seconds,
        f"{len(queries) / seconds:.0f} samples/s, novel {100 * sum(novel) / len(novel):.1f} %",
    ))

    small = [r.structure for r in held_out if len(r.structure) <= 20][: args.relax]
    for preset in ("reward", "validation"):
        config = load_config(MLIPConfig, preset)
        calculator_for(config)  # model loading is not part of the rate
        for how, run in (("one at a time", lambda c=config: [relax(s, c) for s in small]),
                         ("batched", lambda c=config: relax_many(small, c))):
            start = time.perf_counter()
            results = run()
            seconds = time.perf_counter() - start
            failed = sum(not r.ok for r in results)
            rows.append((
                f"CHGNet relaxation ({preset}: {config.max_steps} steps), {how}", len(small), seconds,
                f"{60 * len(small) / seconds:.1f} relaxations/min, {failed} failed",
            ))

    hull = BundledMPReference()
    for label in ("E_hull look-ups (cold: diagrams built)", "E_hull look-ups (warm: cached diagrams)"):
        start = time.perf_counter()
        for record in held_out:
            hull.e_above_hull(record.structure.composition, record.properties["formation_energy_per_atom"])
        seconds = time.perf_counter() - start
        rows.append((label, len(held_out), seconds, f"{len(held_out) / seconds:.0f} look-ups/s"))

    table = Table(title="evaluation throughput (this machine, one process)")
    for column in ("what", "n", "seconds", "rate"):
        table.add_column(column, justify="left" if column in ("what", "rate") else "right")
    for what, n, seconds, rate in rows:
        table.add_row(what, str(n), f"{seconds:.1f}", rate)
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
