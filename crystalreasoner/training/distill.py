"""Self-distillation: a checkpoint's own samples that pass the evaluation's checks become SFT data.

Rejection-sampling fine-tuning: sampled with redraws (an atom line that lands on an earlier atom,
or that the codec cannot read, is drawn again), a model's answers to the training prompts are its
own text with the failing lines written otherwise. The answers that pass the checks the reward
and the report use (parsed, structurally valid, SMACT-valid, the requested composition) become
the training split of a new trace set, next to a share of the original traces so that the rest
of what SFT taught holds, and a short SFT from the same checkpoint trains on it. The answers the
codec cannot read, where the block departs from the written form (``first_departure``), go to a
``rejected`` split: ``SFTConfig.rejected_unlikelihood`` lowers the token the model wrote there.

From tiny-cpu-unlikelihood (plain samples, no redraws), with the rejected split lowered, it gave
the shipped tiny-cpu-rejected (parse 96.8 -> 98.2 %, README, "The model's own mistakes").
Measured on tiny-cpu-restated it did not move the redraws into the weights: its collisions come
from composing coordinates out of a few lattice values, and more training on its own such
coordinates made it collide more (structurally valid 42.1 -> 31.5 %, composition 41.1 -> 47.0 %;
README, "Where the structural failures come from").
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import disable_progress_bars
from pymatgen.core import Composition, Structure

from crystalreasoner.data.codec import CodecConfig, first_departure
from crystalreasoner.errors import ConfigError
from crystalreasoner.evaluation.stage import EvaluateConfig, check_samples, generation_samples
from crystalreasoner.generation.stage import GeneratedSample, prompt_trace_set
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.traces.builder import TraceConfig, TraceRecord, TraceSet, codec_config

#: what a sample must pass to be trained on: the reward's and the report's own checks
KEPT_IF = ("parsed", "structurally_valid", "smact_valid", "composition_match")


def passing_samples(samples: list[GeneratedSample]) -> list[GeneratedSample]:
    """The samples that pass every check of ``KEPT_IF`` (no novelty reference needed)."""
    rows = check_samples(samples, EvaluateConfig(novelty_dataset=None))
    return [s for s, row in zip(samples, rows) if all(row.metrics.get(name) == 1 for name in KEPT_IF)]


def rejected_samples(samples: list[GeneratedSample], codec: CodecConfig) -> list[GeneratedSample]:
    """The samples the codec cannot read whose block departs from what the encoder writes: the
    point of departure is the token to lower. Cells that the angles cannot make, blocks cut at
    the length cap and answers with no block have none and are left out."""
    return [s for s in samples if s.parse_error and first_departure(s.text, codec) is not None]


def sample_record(sample: GeneratedSample, split: str = "train") -> TraceRecord:
    """A sample as a record: its prompt, and its own text as the answer (the structure's
    counts when it has one, the requested formula's otherwise)."""
    if sample.structure:
        structure = Structure.from_dict(sample.structure)
        composition, n_atoms = structure.composition, len(structure)
    else:
        composition, n_atoms = Composition(sample.formula) if sample.formula else Composition(), 0
    return TraceRecord(
        prompt=[{"role": "user", "content": sample.prompt}],
        completion=[{"role": "assistant", "content": sample.text}],
        task=sample.task,
        material_id=sample.material_id or "",
        split=split,
        variant=sample.sample_index,
        formula=sample.formula or composition.reduced_formula,
        n_elements=len(composition.elements),
        n_atoms=n_atoms,
        sample_weight=1.0,
        structure_hash=sha256_json(sample.structure or sample.text),
        properties=dict(sample.targets),
    )


def distilled_trace_set(
    base: TraceSet,
    passing: list[GeneratedSample],
    originals: int,
    seed: int = 0,
    rejected: Sequence[GeneratedSample] = (),
) -> TraceSet:
    """``base`` with its training split replaced by the passing samples plus ``originals`` of
    its own training records drawn at random (all of them when there are fewer), and the
    ``rejected`` samples as a split of that name when there are any; the held-out splits stay, so
    the new checkpoint is evaluated on the same prompts."""
    if not passing:
        raise ConfigError("no sample passed the checks: nothing to distil")
    train = base.splits["train"]
    kept = random.Random(seed).sample(train, min(originals, len(train)))
    records = [sample_record(s) for s in passing] + kept
    random.Random(seed + 1).shuffle(records)
    splits = {**base.splits, "train": records}
    if rejected:
        splits["rejected"] = [sample_record(s, "rejected") for s in rejected]
    return TraceSet(base.config, splits, failures=[])


def distil(
    registry: ArtifactRegistry,
    generation_ids: Sequence[str],
    *,
    originals: int = 1000,
    seed: int = 0,
    traces_id: str | None = None,
) -> ArtifactDoc:
    """Register the trace set of the generations' passing and rejected samples (see the module
    docstring); its parents are the generations and the trace set it extends (``traces_id``, by
    default the one the first generation's prompts came from)."""
    if not generation_ids:
        raise ConfigError("distil needs at least one generation")
    base_doc = prompt_trace_set(registry, generation_ids[0], traces_id)
    samples = [s for generation_id in generation_ids for s in generation_samples(registry, generation_id)]
    passing = passing_samples(samples)
    rejected = rejected_samples(samples, codec_config(base_doc.config))
    base = TraceSet.read_jsonl(base_doc.location, TraceConfig.model_validate(base_doc.config))
    trace_set = distilled_trace_set(base, passing, originals, seed, rejected)
    fingerprint = trace_set.fingerprint()
    out = registry.spec.files_root / "traces" / fingerprint[:16]
    files = trace_set.write_jsonl(out)
    disable_progress_bars()
    trace_set.to_hf().save_to_disk(str(out / "hf"))
    return registry.register(
        ArtifactKind.TRACES,
        name="self-distilled from " + ", ".join(registry.get(g).name for g in generation_ids),
        config=base_doc.config,  # how the blocks are written: the base set's (codec, labels)
        parents=[*generation_ids, base_doc.artifact_id],
        files=files,
        content_hash=fingerprint,
        location=out,
        summary={
            **trace_set.summary(),
            "samples": len(samples), "passing": len(passing), "rejected": len(rejected),
            "originals": len(trace_set.splits["train"]) - len(passing), "seed": seed,
        },
    )
