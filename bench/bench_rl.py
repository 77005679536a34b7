"""Seconds per GRPO step split into generation, reward (of which MLIP) and update.

Run: ``.venv/bin/python bench/bench_rl.py --checkpoint DIR_OR_ID --traces TRACES_ID [--steps 3]``
(default checkpoint: the shipped tiny-cpu one; its prompts come from ``--traces``, a trace set
of the same dataset). Uses the ``tiny-cpu`` RL preset in a fresh temporary run folder.
``--from-run RUN_DIR`` prints the same table for the steps of a finished RL run instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from crystalreasoner.config import load_config
from crystalreasoner.rl.grpo import RLConfig, RLStage
from crystalreasoner.stores import open_registry
from crystalreasoner.stores.registry import register_checkpoint_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", help="checkpoint artifact id or folder (default: shipped tiny-cpu)")
    parser.add_argument("--traces", help="trace-set artifact id for the prompts (needed unless --from-run)")
    parser.add_argument("--from-run", type=Path, help="an RL run folder: table of its step_times.jsonl")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--preset", default="tiny-cpu")
    args = parser.parse_args()
    if args.from_run:
        steps, title = _steps(args.from_run), f"GRPO step time, run {args.from_run.name}"
    elif not args.traces:
        parser.error("--traces is required unless --from-run is given")
    else:
        steps, title = _run_steps(args), f"GRPO step time, preset {args.preset}"
    table = Table(title=f"{title}, {len(steps)} steps (s)")
    for column in ("step", "total", "generation", "reward", "of which MLIP", "update", "MLIP share"):
        table.add_column(column, justify="right")
    for s in steps:
        table.add_row(str(s["step"]), f"{s['total']:.1f}", f"{s['generation']:.1f}", f"{s['reward']:.1f}",
                      f"{s['mlip']:.1f}", f"{s['update']:.1f}", f"{100 * s['mlip'] / s['total']:.0f} %")
    total = {k: sum(s[k] for s in steps) for k in ("total", "generation", "reward", "mlip", "update")}
    table.add_row("all", *(f"{total[k]:.1f}" for k in ("total", "generation", "reward", "mlip", "update")),
                  f"{100 * total['mlip'] / total['total']:.0f} %")
    Console().print(table)


def _steps(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "step_times.jsonl").read_text().splitlines()]


def _run_steps(args) -> list[dict]:
    """A fresh RL run of ``args.steps`` steps in a temporary folder; its step times."""
    from crystalreasoner.checkpoints import shipped_checkpoint

    config = load_config(RLConfig, args.preset, {"trl_args.max_steps": args.steps, "trl_args.save_steps": 1000})
    with open_registry() as registry:
        checkpoint = args.checkpoint or str(shipped_checkpoint("tiny-cpu"))
        if Path(checkpoint).is_dir():
            checkpoint = register_checkpoint_folder(registry, checkpoint, f"checkpoint {Path(checkpoint).name}")
        with tempfile.TemporaryDirectory() as run_dir:
            RLStage(config).run(registry, checkpoint, traces_id=args.traces, run_dir=run_dir, resume=False)
            return _steps(Path(run_dir))


if __name__ == "__main__":
    main()
