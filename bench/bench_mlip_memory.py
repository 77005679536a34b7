"""Peak memory of batched CHGNet relaxations, with and without the graph-edge budget.

Run: ``.venv/bin/python bench/bench_mlip_memory.py [--structures 64] [--steps 3]``.
The same held-out crystals (rattled, as generated samples are) are relaxed by ``relax_many`` in a
fresh process per setting, so each peak RSS is that setting's own. A CHGNet forward keeps ~85 KB
per bond and angle for its autograd forces and stress; the budget splits a step's forward.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table


def child(structures: int, steps: int, max_graph_edges: int) -> None:
    from crystalreasoner.config import load_config
    from crystalreasoner.data import load_dataset
    from crystalreasoner.evaluation.mlip import MLIPConfig, calculator_for, relax_many

    config = load_config(MLIPConfig, "reward").model_copy(update={"max_steps": steps, "max_graph_edges": max_graph_edges})
    model = calculator_for(config).model
    batch = []
    for record in load_dataset("mp20-mini").records("test")[:structures]:
        structure = record.structure.copy()
        structure.perturb(0.1, min_distance=0.05, seed=len(batch))
        batch.append(structure)
    graphs = [model.graph_converter(s) for s in batch]
    edges = sum(len(g.atom_graph) + len(g.bond_graph) for g in graphs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    results = relax_many(batch, config)
    print(json.dumps({
        "seconds": time.perf_counter() - start,
        "edges": edges,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_before_mb": before / 1024,
        "energies": [r.energy_per_atom for r in results],
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--structures", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.structures, args.steps, args.child)
        return
    from crystalreasoner.evaluation.mlip import MLIPConfig

    budgets = [("default", MLIPConfig().max_graph_edges), ("unbounded (before)", 10**12)]
    runs = {}
    for name, budget in budgets:
        out = subprocess.run(
            [sys.executable, __file__, "--structures", str(args.structures), "--steps", str(args.steps), "--child", str(budget)],
            check=True, capture_output=True, text=True,
        ).stdout
        runs[name] = json.loads(out.strip().splitlines()[-1])
    reference = runs["unbounded (before)"]["energies"]
    table = Table(title=f"relax_many: {args.structures} rattled mp20-mini test crystals, {args.steps} FIRE steps, "
                        f"{runs['default']['edges']:,} bonds + angles at the start")
    for column in ("max_graph_edges", "peak RSS (MB)", "RSS before relaxing (MB)", "seconds", "max |ΔE/atom| vs unbounded (eV)"):
        table.add_column(column)
    for name, budget in budgets:
        run = runs[name]
        delta = max(abs(a - b) for a, b in zip(run["energies"], reference) if a is not None and b is not None)
        table.add_row(f"{name}: {budget:,}", f"{run['peak_mb']:.0f}", f"{run['peak_before_mb']:.0f}",
                      f"{run['seconds']:.1f}", f"{delta:.1e}")
    Console().print(table)
    ratio = runs["unbounded (before)"]["peak_mb"] / runs["default"]["peak_mb"]
    print(f"peak RSS, unbounded / default: {ratio:.2f}x")


if __name__ == "__main__":
    main()
