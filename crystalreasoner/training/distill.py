"""Self-distillation: a checkpoint's own samples that pass the evaluation's checks become SFT data.

Rejection-sampling fine-tuning: sampled with redraws (an atom line that lands on an earlier atom,
or that the codec cannot read, is drawn again), a model's answers to the training prompts are its
own text with the failing lines written otherwise. The answers that pass the checks the reward
and the report use (parsed, structurally valid, SMACT-valid, the requested composition) become
the training split of a new trace set, next to a share of the original traces so that the rest
of what SFT taught holds, and a short SFT from the same checkpoint trains on it.

Measured on tiny-cpu-restated it did not move the redraws into the weights: its collisions come
from composing coordinates out of a few lattice values, and more training on its own such
coordinates made it collide more (structurally valid 42.1 -> 31.5 %, composition 41.1 -> 47.0 %;
README, "Where the structural failures come from").
"""

from __future__ import annotations

import random

from datasets import disable_progress_bars
from pymatgen.core import Structure

from crystalreasoner.errors import ConfigError
from crystalreasoner.evaluation.stage import EvaluateConfig, check_samples, generation_samples
from crystalreasoner.generation.stage import GeneratedSample, prompt_trace_set
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.traces.builder import TraceConfig, TraceRecord, TraceSet

#: what a sample must pass to be trained on: the reward's and the report's own checks
KEPT_IF = ("parsed", "structurally_valid", "smact_valid", "composition_match")


def passing_samples(samples: list[GeneratedSample]) -> list[GeneratedSample]:
    """The samples that pass every check of ``KEPT_IF`` (no novelty reference needed)."""
    rows = check_samples(samples, EvaluateConfig(novelty_dataset=None))
    return [s for s, row in zip(samples, rows) if all(row.metrics.get(name) == 1 for name in KEPT_IF)]


def sample_record(sample: GeneratedSample) -> TraceRecord:
    """A passing sample as a training record: its prompt, and its own text as the answer."""
    structure = Structure.from_dict(sample.structure)
    return TraceRecord(
        prompt=[{"role": "user", "content": sample.prompt}],
        completion=[{"role": "assistant", "content": sample.text}],
        task=sample.task,
        material_id=sample.material_id or "",
        split="train",
        variant=sample.sample_index,
        formula=sample.formula or structure.composition.reduced_formula,
        n_elements=len(structure.composition.elements),
        n_atoms=len(structure),
        sample_weight=1.0,
        structure_hash=sha256_json(sample.structure),
        properties=dict(sample.targets),
    )


def distilled_trace_set(
    base: TraceSet, passing: list[GeneratedSample], originals: int, seed: int = 0
) -> TraceSet:
    """``base`` with its training split replaced by the passing samples plus ``originals`` of
    its own training records drawn at random (all of them when there are fewer); the held-out
    splits stay, so the new checkpoint is evaluated on the same prompts."""
    if not passing:
        raise ConfigError("no sample passed the checks: nothing to distil")
    train = base.splits["train"]
    kept = random.Random(seed).sample(train, min(originals, len(train)))
    records = [sample_record(s) for s in passing] + kept
    random.Random(seed + 1).shuffle(records)
    return TraceSet(base.config, {**base.splits, "train": records}, failures=[])


def distil(
    registry: ArtifactRegistry, generation_id: str, *, originals: int = 1000, seed: int = 0, traces_id: str | None = None
) -> ArtifactDoc:
    """Register the trace set of a generation's passing samples (see the module docstring);
    its parents are the generation and the trace set it extends (``traces_id``, by default the
    one its prompts came from)."""
    base_doc = prompt_trace_set(registry, generation_id, traces_id)
    samples = generation_samples(registry, generation_id)
    passing = passing_samples(samples)
    base = TraceSet.read_jsonl(base_doc.location, TraceConfig.model_validate(base_doc.config))
    trace_set = distilled_trace_set(base, passing, originals, seed)
    fingerprint = trace_set.fingerprint()
    out = registry.spec.files_root / "traces" / fingerprint[:16]
    files = trace_set.write_jsonl(out)
    disable_progress_bars()
    trace_set.to_hf().save_to_disk(str(out / "hf"))
    return registry.register(
        ArtifactKind.TRACES,
        name=f"self-distilled from {registry.get(generation_id).name}",
        config=base_doc.config,  # how the blocks are written: the base set's (codec, labels)
        parents=[generation_id, base_doc.artifact_id],
        files=files,
        content_hash=fingerprint,
        location=out,
        summary={
            **trace_set.summary(),
            "samples": len(samples), "passing": len(passing),
            "originals": len(trace_set.splits["train"]) - len(passing), "seed": seed,
        },
    )
