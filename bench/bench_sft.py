"""SFT throughput: our trainer settings vs plain TRL defaults, same model, data and steps.

"Ours" batches samples of similar length (``group_by_length``), so little compute goes to
padding, and never packs samples across each other; "plain" is ``trl.SFTTrainer`` with its
default random batches. The last row adds bf16 autocast (``precision: bf16``), on a CPU with
native bf16 only. Tokens/s counts real (non-padding) tokens.
Run: ``.venv/bin/python bench/bench_sft.py [--samples 480] [--steps 30]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch
import trl
from rich.console import Console
from rich.table import Table

from crystalreasoner.config import load_config
from crystalreasoner.data import DatasetBundle, load_dataset
from crystalreasoner.traces.builder import TraceConfig, build_trace_set
from crystalreasoner.traces.cache import AnalysisCache
from crystalreasoner.training.models import build_model, build_tokenizer, cpu_has_native_bf16
from crystalreasoner.training.sft import TRL_DEFAULTS, SFTConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=480)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sft = load_config(SFTConfig, "tiny-cpu")
    bundle = load_dataset("mp20-mini")
    bundle = DatasetBundle("bench", {"train": bundle.splits["train"][: args.samples // 3]})
    with AnalysisCache() as cache:
        trace_set = build_trace_set(bundle, load_config(TraceConfig, sft.traces_preset), cache)
    data = trace_set.to_hf()["train"].select_columns(["prompt", "completion"])
    texts = [p[0]["content"] + c[0]["content"] for p, c in zip(data["prompt"], data["completion"])]
    tokenizer = build_tokenizer(sft.model, texts)
    common = {"max_steps": args.steps, "per_device_train_batch_size": 16, "report_to": "none",
              "use_cpu": True, "bf16": False, "save_strategy": "no", "eval_strategy": "no",
              "logging_steps": args.steps, "max_length": sft.max_length, "seed": 0}
    ours = {**TRL_DEFAULTS, **common}
    table = Table(title=f"SFT, tiny-cpu model, {args.steps} steps of 16 samples")
    for column in ("trainer", "seconds", "real tokens", "real tokens/s", "ratio"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    rates = []
    runs = [("plain TRL SFTTrainer defaults", common), ("ours (length-grouped)", ours)]
    if cpu_has_native_bf16():
        runs.append(("ours + bf16 autocast", {**ours, "bf16": True}))
    for name, settings in runs:
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as out:
            trainer = trl.SFTTrainer(
                model=build_model(sft.model, tokenizer),
                args=trl.SFTConfig(output_dir=out, **settings),
                train_dataset=data,
                processing_class=tokenizer,
            )
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
        # TRL logs num_tokens from the attention masks: real tokens, padding excluded
        tokens = max(float(h.get("num_tokens", 0)) for h in trainer.state.log_history)
        rates.append(tokens / seconds)
        table.add_row(name, f"{seconds:.1f}", f"{tokens:.0f}", f"{tokens / seconds:.0f}", f"{rates[-1] / rates[0]:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
