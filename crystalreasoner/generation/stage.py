"""Generation stage: prompts in, every sample kept (raw text, structure or parse error) out."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pymatgen.core import Composition

from crystalreasoner.config import StageConfig
from crystalreasoner.data.codec import STRUCTURE_END, decode_structure
from crystalreasoner.data.property_tables import PropertyRow
from crystalreasoner.errors import ArtifactNotFoundError, CodecError, ConfigError
from crystalreasoner.generation.sampler import (
    Completion,
    ContinuousBatchSampler,
    Request,
    SamplingParams,
)
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.tasks import Task
from crystalreasoner.traces.prompts import (
    formula_from_prompt,
    formula_text,
    render_prompt,
    task_applies,
)


class GenerateConfig(StageConfig):
    """How to sample: the paper's settings by default (SPEC §6)."""

    n_samples: int = 16  # per prompt
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.7
    max_new_tokens: int = SamplingParams.max_new_tokens
    seed: int = 0
    backend: Literal["continuous", "hf", "vllm"] = "continuous"
    slots: int = 128  # sequences decoding together (continuous backend)
    device: str = "cpu"  # "cuda" for a GPU (continuous and hf back ends)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights and KV cache
    constrained: bool = False  # composition-constrained decoding (structure block; trace composition lines)
    max_atoms: int = 20
    #: constrained decoding redraws an atom line that puts an atom closer than this (Å) to an
    #: earlier one, an atom line the codec cannot read and an angle line that makes no cell, at
    #: most ``max_redraws`` times per sample; None: no redraws
    min_distance: float | None = 0.5
    max_redraws: int = 16
    #: the same redraws without the composition constraint. Off for the paper's metrics; on, a
    #: model that copies earlier atom lines (a site written twice) gets another draw of that line
    redraw_close_atoms: bool = False

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_k, self.top_p, self.max_new_tokens, self.seed)


@dataclass
class PromptSpec:
    """One request: the text the model sees, plus what the answer should satisfy."""

    prompt: str
    formula: str | None = None  # reduced formula asked for; read from the prompt if unset
    material_id: str | None = None  # the known material behind the prompt, if any
    task: str = "conditional"
    targets: dict[str, Any] = field(default_factory=dict)  # e.g. spacegroup_number, buckets

    def __post_init__(self):
        self.formula = self.formula or formula_from_prompt(self.prompt)


@dataclass
class GeneratedSample:
    """One sample: always kept, parsed or not."""

    prompt_index: int
    sample_index: int
    prompt: str
    formula: str | None
    material_id: str | None
    task: str
    targets: dict[str, Any]
    text: str
    finish_reason: str
    n_tokens: int
    structure: dict | None = None  # pymatgen Structure.as_dict()
    parse_error: str | None = None
    redraws: int = 0  # lines drawn again (an atom too close to another, an unreadable atom line,
    # angles that make no cell)


def parse_sample(sample: GeneratedSample) -> GeneratedSample:
    """Decode the structure block of a sample in place; a failure is kept as its parse error."""
    try:
        sample.structure = decode_structure(sample.text).as_dict()
    except CodecError as exc:
        sample.parse_error = str(exc)
    return sample


def _hf_generate(model, tokenizer, requests: list[Request], params: SamplingParams, stop_ids) -> list[Completion]:
    """Hugging Face ``generate``, one prompt at a time (the reference backend)."""
    torch.manual_seed(params.seed)
    done = []
    for request in requests:
        out = model.generate(
            torch.tensor([request.prompt_ids], device=model.device),
            do_sample=True,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=sorted(stop_ids),
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(request.prompt_ids):].tolist()
        reason = "stop" if out and out[-1] in stop_ids else "length"
        done.append(Completion(request.request_id, out, reason))
    return done


def _vllm_generate(checkpoint: str, prompts: list[str], params: SamplingParams, n: int, stop: list[str]):
    """vLLM on a GPU (optional): same sampling settings, text in and out."""
    try:
        from vllm import LLM
        from vllm import SamplingParams as VllmParams
    except ImportError as exc:
        raise ConfigError("backend 'vllm' needs vLLM and a GPU: pip install vllm") from exc
    llm = LLM(model=checkpoint, seed=params.seed)
    settings = VllmParams(
        n=n, temperature=params.temperature, top_k=params.top_k, top_p=params.top_p,
        max_tokens=params.max_new_tokens, stop=stop, include_stop_str_in_output=True,
    )
    return [[(o.text, o.finish_reason, len(o.token_ids)) for o in r.outputs] for r in llm.generate(prompts, settings)]


@dataclass
class GenerateStage:
    """Sample ``n_samples`` answers per prompt from a checkpoint and keep every one."""

    config: GenerateConfig

    def sample(self, checkpoint: str | Path, prompts: list[PromptSpec]) -> list[GeneratedSample]:
        from crystalreasoner.generation.constraints import CompositionConstraint, CompositionTarget
        from crystalreasoner.training.models import load_checkpoint

        cfg = self.config
        model, tokenizer = load_checkpoint(checkpoint)
        if cfg.backend != "vllm":
            model.to(device=cfg.device, dtype=getattr(torch, cfg.dtype))
        chats = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p.prompt}], add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        stop_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(STRUCTURE_END)}
        keys = [(i, j) for i in range(len(prompts)) for j in range(cfg.n_samples)]
        redraws: dict[str, int] = {}

        if cfg.backend == "vllm":
            outputs = _vllm_generate(str(checkpoint), chats, cfg.sampling, cfg.n_samples, [STRUCTURE_END])
            raw = {(i, j): out for i, outs in enumerate(outputs) for j, out in enumerate(outs)}
        else:
            prompt_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in chats]
            requests = [Request(f"{i}:{j}", prompt_ids[i]) for i, j in keys]
            if cfg.backend == "hf":
                completions = _hf_generate(model, tokenizer, requests, cfg.sampling, stop_ids)
            else:
                mask = None
                if cfg.constrained or cfg.redraw_close_atoms:
                    constraint = CompositionConstraint(
                        tokenizer, cfg.max_atoms, min_distance=cfg.min_distance, max_redraws=cfg.max_redraws
                    )
                    targets: dict[str, CompositionTarget] | None = None  # None: redraws only
                    if cfg.constrained:
                        targets = {
                            f"{i}:{j}": constraint.request_target(prompts[i].prompt, prompts[i].formula)
                            for i, j in keys
                        }
                    mask = constraint.token_mask(targets)
                    redraws = constraint.redraws  # counted while the sampler runs
                sampler = ContinuousBatchSampler(model, stop_ids, slots=cfg.slots)
                completions = list(sampler.generate(requests, cfg.sampling, mask))
            raw = {}
            for c in completions:
                i, j = map(int, c.request_id.split(":"))
                text = tokenizer.decode(c.token_ids, skip_special_tokens=False)
                text = text.replace(tokenizer.eos_token, "")
                raw[(i, j)] = (text, c.finish_reason, len(c.token_ids))

        samples = []
        for i, j in keys:
            text, reason, n_tokens = raw[(i, j)]
            p = prompts[i]
            samples.append(parse_sample(GeneratedSample(
                i, j, p.prompt, p.formula, p.material_id, p.task, p.targets, text, reason, n_tokens,
                redraws=redraws.get(f"{i}:{j}", 0),
            )))
        return samples

    def run(
        self,
        registry: ArtifactRegistry,
        checkpoint_id: str,
        prompts: list[PromptSpec],
        *,
        name: str = "generation",
        parents: list[str] = (),
    ) -> ArtifactDoc:
        checkpoint = registry.get(checkpoint_id)
        started = time.monotonic()
        samples = self.sample(checkpoint.location, prompts)
        seconds = time.monotonic() - started
        config = {**self.config.model_dump(mode="json"), "prompts": sha256_json([asdict(p) for p in prompts])}
        text = "".join(json.dumps(asdict(s)) + "\n" for s in samples)
        # the samples are in the key: a rerun that samples differently (new code, other weights
        # behind the same id) gets its own folder instead of overwriting an earlier artifact's
        key = sha256_json({"config": config, "checkpoint": checkpoint_id, "samples": sha256_json(text)})[:16]
        out = registry.spec.files_root / "generations" / key
        out.mkdir(parents=True, exist_ok=True)
        path = out / "samples.jsonl"
        path.write_text(text)
        parsed = sum(s.structure is not None for s in samples)
        tokens = sum(s.n_tokens for s in samples)
        return registry.register(
            ArtifactKind.GENERATION,
            name=name,
            config=config,
            parents=[checkpoint_id, *parents],
            files=[path],
            location=out,
            summary={
                "prompts": len(prompts),
                "samples": len(samples),
                "parsed": parsed,
                "parse_rate": parsed / max(len(samples), 1),
                "seconds": round(seconds, 2),
                "tokens_per_second": round(tokens / max(seconds, 1e-9), 1),
                "redraws": sum(s.redraws for s in samples),
            },
        )


def prompt_trace_set(registry: ArtifactRegistry, artifact_id: str, traces_id: str | None = None) -> ArtifactDoc:
    """The trace set whose held-out prompts go with an artifact: ``traces_id`` when given, else
    the nearest one in the artifact's lineage (a checkpoint's training set, a generation's prompts)."""
    if traces_id is not None:
        return registry.get(traces_id)
    found = next((d for d in registry.lineage(artifact_id) if d.kind == ArtifactKind.TRACES), None)
    if found is None:
        raise ArtifactNotFoundError(
            f"{registry.get(artifact_id).kind} {artifact_id} has no trace set in its lineage: pass the trace set to use (--traces)"
        )
    return found


def prompts_from_traces(traces_location: str | Path, split: str, task: str = "conditional") -> list[PromptSpec]:
    """The held-out prompts of a trace set (first variant of each material), with their targets."""
    records = [json.loads(line) for line in (Path(traces_location) / f"{split}.jsonl").read_text().splitlines()]
    return [
        PromptSpec(
            prompt=r["prompt"][0]["content"],
            formula=r["formula"],
            material_id=r["material_id"],
            task=r["task"],
            targets=r["properties"],
        )
        for r in records
        if r["task"] == task and r["variant"] == 0
    ]


def prompts_from_table(
    rows: Sequence[PropertyRow], split: str, task: str, seed: int = 0
) -> list[PromptSpec]:
    """Prompts for a composition-only property table (no structure behind them).

    A composition qualifies when the task applies to its reduced formula's cell (for thermal
    expansion: a CTE inside the buckets and fewer than 10 atoms); the phrasing is seeded.
    """
    rng = random.Random(f"{seed}:{task}:{split}")
    kind = Task(task)
    prompts = []
    for row in rows:
        composition = Composition(row.formula)
        if row.split != split or not task_applies(kind, row.properties, int(composition.num_atoms)):
            continue
        formula = formula_text(composition)
        prompt = render_prompt(kind, formula, row.properties, rng)
        prompts.append(PromptSpec(prompt=prompt, formula=formula, task=task, targets=dict(row.properties)))
    return prompts


def load_samples(path: str | Path) -> list[GeneratedSample]:
    """Read a generation batch's ``samples.jsonl`` back."""
    return [GeneratedSample(**json.loads(line)) for line in Path(path).read_text().splitlines()]
