"""Trace building and codec throughput on the bundled MP-20 structures.

Run: ``.venv/bin/python bench/bench_traces.py [--n 120] [--robocrys-n 12] [--jobs 2]``.
Prints one table; all rows are measured in this one run on this machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crystalreasoner.data import CodecConfig, DatasetBundle, decode_structure, encode_structure, load_dataset
from crystalreasoner.traces.builder import TraceConfig, build_trace_set
from crystalreasoner.traces.cache import AnalysisCache


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=120, help="structures for the fast describers")
    parser.add_argument("--robocrys-n", type=int, default=12, help="structures for robocrys")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    records = load_dataset("mp20-mini").records()
    table = Table(title=f"trace building ({args.jobs} worker processes) and codec")
    for column in ("what", "structures", "seconds", "structures/s"):
        table.add_column(column, justify="right" if column != "what" else "left")

    with tempfile.TemporaryDirectory() as scratch:
        for describer, n in (("none", args.n), ("crystalnn", args.n), ("robocrys", args.robocrys_n)):
            bundle = DatasetBundle("bench", {"train": records[:n]})
            config = TraceConfig(describer=describer, n_jobs=args.jobs)
            with AnalysisCache(Path(scratch) / f"{describer}.sqlite") as cache:
                cold = _timed(lambda: build_trace_set(bundle, config, cache))
                warm = _timed(lambda: build_trace_set(bundle, config, cache))
            table.add_row(f"traces, {describer}, cold cache", str(n), f"{cold:.2f}", f"{n / cold:.1f}")
            table.add_row(f"traces, {describer}, cached", str(n), f"{warm:.2f}", f"{n / warm:.1f}")

    structures = [r.structure for r in records]
    for decimals in (8, 4):
        codec = CodecConfig(coord_decimals=decimals)
        texts: list[str] = []
        encode = _timed(lambda: texts.extend(encode_structure(s, codec) for s in structures))
        decode = _timed(lambda: [decode_structure(t) for t in texts])
        n = len(structures)
        table.add_row(f"codec encode, {decimals} decimals", str(n), f"{encode:.2f}", f"{n / encode:.0f}")
        table.add_row(f"codec decode, {decimals} decimals", str(n), f"{decode:.2f}", f"{n / decode:.0f}")
        table.add_row(
            f"codec round trip, {decimals} decimals", str(n), f"{encode + decode:.2f}",
            f"{n / (encode + decode):.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
