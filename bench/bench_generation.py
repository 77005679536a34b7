"""Generation throughput: our continuous-batching sampler vs Hugging Face ``generate``.

Default: same model, one prompt, same sampling settings (T=1, top-k 50, top-p 0.7) and the same
number of new tokens per sample (stops disabled, so every backend does identical work).
Run: ``.venv/bin/python bench/bench_generation.py [--checkpoint DIR] [--samples 128] [--new 256]``.
Without a checkpoint, a randomly initialised model of the ``tiny-cpu`` size is used (speed does
not depend on the weights).

``--stage``: the generation stage's workload instead: the shipped tiny-cpu model, 4 samples for
each of ``--formulas`` validation formulas of mp20-mini, real stops and the 1,536-token cap, so
sequences end at different lengths (ours on all samples, HF one at a time on the first few).
"""

from __future__ import annotations

import argparse
import random
import time

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForCausalLM, LlamaConfig

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.config import load_config
from crystalreasoner.data.codec import STRUCTURE_END
from crystalreasoner.data.datasets import load_dataset
from crystalreasoner.generation.sampler import ContinuousBatchSampler, Request, SamplingParams
from crystalreasoner.tasks import Task
from crystalreasoner.traces.prompts import element_counts, formula_text, render_prompt
from crystalreasoner.training.models import load_checkpoint
from crystalreasoner.training.sft import SFTConfig

PROMPT = "Generate a crystal structure of MgIn2 with space group 12. The cell contains Mg2 In4."


def _model(checkpoint: str | None):
    if checkpoint:
        model, tokenizer = load_checkpoint(checkpoint)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True, tokenize=True
        )["input_ids"]
        return model, list(ids)
    size = load_config(SFTConfig, "tiny-cpu").model
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=size.vocab_size, hidden_size=size.hidden_size, num_hidden_layers=size.num_layers,
        num_attention_heads=size.num_heads, num_key_value_heads=size.num_heads,
        intermediate_size=size.intermediate_size, max_position_embeddings=size.max_position_embeddings,
        tie_word_embeddings=True, pad_token_id=0,
    )
    return AutoModelForCausalLM.from_config(config).eval(), list(range(10, 70))


def _stage_requests(formulas: int, per_formula: int = 4):
    """The shipped tiny-cpu model and val prompts phrased as the trace builder does, counts stated."""
    model, tokenizer = load_checkpoint(shipped_checkpoint("tiny-cpu"))
    requests = []
    for i, record in enumerate(load_dataset("mp20-mini").records("val")[:formulas]):
        composition = record.structure.composition
        elements = [el.symbol for el in sorted(composition.elements, key=lambda el: (el.X, el.symbol))]
        counts = element_counts({el: int(n) for el, n in composition.get_el_amt_dict().items()}, elements)
        prompt = render_prompt(Task.CONDITIONAL, formula_text(composition), record.properties, random.Random(i), counts=counts)
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )["input_ids"]
        requests += [Request(f"{i}:{j}", list(ids)) for j in range(per_formula)]
    stops = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(STRUCTURE_END)}
    return model, requests, stops


def stage(formulas: int, hf_samples: int) -> None:
    model, requests, stops = _stage_requests(formulas)
    params = SamplingParams()
    rows = []
    with torch.inference_mode():
        start, tokens = time.perf_counter(), 0
        for request in requests[:hf_samples]:
            out = model.generate(
                torch.tensor([request.prompt_ids]), do_sample=True, temperature=params.temperature,
                top_k=params.top_k, top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                eos_token_id=sorted(stops), pad_token_id=0,
            )
            tokens += out.shape[1] - len(request.prompt_ids)
        rows.append(("HF, 1 at a time", hf_samples, tokens, time.perf_counter() - start))
    for slots in (64, 128):
        sampler = ContinuousBatchSampler(model, stop_ids=stops, slots=slots)
        start = time.perf_counter()
        tokens = sum(len(c.token_ids) for c in sampler.generate(requests, params))
        rows.append((f"ours, {slots} slots", len(requests), tokens, time.perf_counter() - start))
    base = rows[0][1] / rows[0][3]
    table = Table(title=f"generation stage workload: {len(requests)} samples, stops on, {torch.get_num_threads()} threads")
    for column in ("backend", "samples", "tokens", "seconds", "tokens/s", "samples/s", "vs HF 1-at-a-time"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, samples, tokens, seconds in rows:
        sps = samples / seconds
        table.add_row(name, str(samples), str(tokens), f"{seconds:.1f}", f"{tokens / seconds:.0f}", f"{sps:.2f}", f"{sps / base:.1f}x")
    Console(width=120).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint")
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--new", type=int, default=256, help="new tokens per sample")
    parser.add_argument("--hf-samples", type=int, default=8, help="samples for HF one at a time")
    parser.add_argument("--stage", action="store_true", help="the generation stage's workload (see above)")
    parser.add_argument("--formulas", type=int, default=123, help="val formulas for --stage, 4 samples each")
    args = parser.parse_args()
    if args.stage:
        stage(args.formulas, args.hf_samples)
        return
    model, prompt = _model(args.checkpoint)
    params = SamplingParams(max_new_tokens=args.new)
    hf_kwargs = dict(
        do_sample=True, temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
        max_new_tokens=args.new, min_new_tokens=args.new, pad_token_id=0,
    )
    rows = []

    def record(name: str, samples: int, seconds: float) -> None:
        rows.append((name, samples, seconds, samples * args.new / seconds, samples / seconds))

    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(args.hf_samples):
            model.generate(torch.tensor([prompt]), **hf_kwargs)
        record("HF, 1 at a time", args.hf_samples, time.perf_counter() - start)
        for batch in (16, 64):
            n = max(args.samples // batch, 1) * batch
            start = time.perf_counter()
            for _ in range(n // batch):
                model.generate(torch.tensor([prompt] * batch), **hf_kwargs)
            record(f"HF, batch {batch}", n, time.perf_counter() - start)
    for slots in (16, 64, 128):
        sampler = ContinuousBatchSampler(model, stop_ids=set(), slots=slots)
        requests = [Request(str(i), prompt) for i in range(args.samples)]
        start = time.perf_counter()
        list(sampler.generate(requests, params))
        record(f"ours, {slots} slots", args.samples, time.perf_counter() - start)

    base = rows[0][4]
    table = Table(title=f"generation, {args.new} new tokens per sample, {torch.get_num_threads()} threads")
    for column in ("backend", "samples", "seconds", "tokens/s", "samples/s", "vs HF 1-at-a-time"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, samples, seconds, tps, sps in rows:
        table.add_row(name, str(samples), f"{seconds:.1f}", f"{tps:.0f}", f"{sps:.2f}", f"{sps / base:.1f}x")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
