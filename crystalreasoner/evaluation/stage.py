"""Evaluation stage: every check of a generation batch, per sample, then the paper's table.

Cheap checks run on every sample; novelty and uniqueness on the parsed ones; the MLIP relaxation
and E_hull only on samples that pass the parse and structural gates (the expensive part). Every
failure is a recorded reason on its sample, never an exception for the batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import field_validator
from pymatgen.core import Structure

from crystalreasoner.config import StageConfig, load_config
from crystalreasoner.data import decode_structure, load_dataset
from crystalreasoner.errors import CodecError
from crystalreasoner.evaluation.checks import structural_problem
from crystalreasoner.evaluation.hull import BundledMPReference, EntriesHullReference, HullReference
from crystalreasoner.evaluation.metrics import aggregate, cheap_metrics
from crystalreasoner.evaluation.mlip import MLIPConfig, RelaxResult, relax_many
from crystalreasoner.evaluation.novelty import StructureIndex, novelty, uniqueness
from crystalreasoner.generation.stage import GeneratedSample, load_samples
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry

#: SPEC §6: a structure is stable when E_hull < 0.1 eV/atom
STABLE_BELOW = 0.1


class EvaluateConfig(StageConfig):
    """What to compute; presets in ``presets/evaluate`` (cheap, full)."""

    preset_folder: ClassVar[str] = "evaluate"
    mlip: MLIPConfig | None = None  # None: no relaxation, no E_hull
    hull_reference: str = "bundled"  # or a JSON(.gz) file of ComputedEntry dicts (MP2020)
    novelty_dataset: str | None = "mp20-mini"  # reference set for novelty; None: skip
    novelty_splits: tuple[str, ...] = ("train",)
    coordination: bool = False  # also compare trace coordination numbers (CrystalNN, slower)

    @field_validator("mlip", mode="before")
    @classmethod
    def _mlip_preset(cls, value: Any) -> Any:
        """``mlip: validation`` names an MLIP preset instead of spelling it out."""
        return load_config(MLIPConfig, value) if isinstance(value, str) else value


def hull_reference(name: str) -> HullReference:
    return BundledMPReference() if name == "bundled" else EntriesHullReference(name)


def novelty_reference(dataset: str, splits: Sequence[str]) -> StructureIndex:
    bundle = load_dataset(dataset)
    return StructureIndex(r.structure for split in splits for r in bundle.splits.get(split, []))


@dataclass
class SampleEvaluation:
    """All per-sample outcomes: 0/1 metrics, E_hull and the reasons of any failure."""

    prompt_index: int
    sample_index: int
    metrics: dict[str, int]
    e_above_hull: float | None = None
    e_form_per_atom: float | None = None
    energy_per_atom: float | None = None
    sparse_chemical_system: bool = False
    errors: dict[str, str] | None = None
    relaxed_structure: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__}


def check_samples(
    samples: Sequence[GeneratedSample],
    config: EvaluateConfig,
    reference: StructureIndex | None = None,
) -> list[SampleEvaluation]:
    """The cheap checks of every sample, then uniqueness and (with a reference) novelty."""
    rows = [
        SampleEvaluation(s.prompt_index, s.sample_index, cheap_metrics(s, coordination=config.coordination), errors={})
        for s in samples
    ]
    for row, sample in zip(rows, samples):
        if sample.parse_error:
            row.errors["parse"] = sample.parse_error
    structures = [Structure.from_dict(s.structure) if s.structure else None for s in samples]
    for row, structure in zip(rows, structures):
        if structure is not None and not row.metrics["structurally_valid"]:
            row.errors["structure"] = structural_problem(structure)
    # only valid structures are matched: StructureMatcher first reduces a structure, and an
    # invalid one can reduce to a cell with a vector of a few mÅ whose lattice mappings filled
    # 24 GB in a GRPO run; an invalid structure is neither unique nor novel
    comparable = [s if row.metrics.get("structurally_valid") else None for s, row in zip(structures, rows)]
    for row, value in zip(rows, uniqueness(comparable)):
        row.metrics["unique"] = value or 0
    if reference is not None:
        for row, value in zip(rows, novelty(comparable, reference)):
            row.metrics["novel"] = value or 0
    return rows


def to_relax(rows: Sequence[SampleEvaluation], samples: Sequence[GeneratedSample]) -> list[int]:
    """Indices of the samples worth an MLIP relaxation: parsed and structurally valid."""
    return [i for i, row in enumerate(rows) if row.metrics.get("structurally_valid") and samples[i].structure]


def apply_relaxations(
    rows: Sequence[SampleEvaluation], relaxed: dict[int, RelaxResult], hull: HullReference
) -> None:
    """E_hull of each relaxed sample, stability, and S.U.N. where novelty was computed."""
    for i, result in relaxed.items():
        row = rows[i]
        if not result.ok:
            row.errors["mlip"] = result.error
            continue
        row.energy_per_atom = result.energy_per_atom
        row.relaxed_structure = result.structure.as_dict()
        e_hull = hull.e_above_hull_from_energy(result.structure.composition, result.energy)
        row.e_form_per_atom, row.sparse_chemical_system = e_hull.e_form_per_atom, e_hull.sparse
        row.e_above_hull = e_hull.e_above_hull
        if e_hull.error:
            row.errors["hull"] = e_hull.error
    for row in rows:
        row.metrics["stable"] = int(row.e_above_hull is not None and row.e_above_hull < STABLE_BELOW)
        if "novel" in row.metrics:
            row.metrics["sun"] = int(row.metrics["stable"] and row.metrics["unique"] and row.metrics["novel"])


def evaluate_samples(
    samples: Sequence[GeneratedSample],
    config: EvaluateConfig,
    *,
    reference: StructureIndex | None = None,
    hull: HullReference | None = None,
) -> list[SampleEvaluation]:
    """Score every sample in this process; the RL reward calls the same functions on its groups."""
    rows = check_samples(samples, config, reference)
    if config.mlip is not None:
        indices = to_relax(rows, samples)
        results = relax_many([Structure.from_dict(samples[i].structure) for i in indices], config.mlip)
        apply_relaxations(rows, dict(zip(indices, results)), hull or hull_reference(config.hull_reference))
    return rows


def summarize(rows: Sequence[SampleEvaluation]) -> dict[str, Any]:
    """The paper's table (per-prompt mean and standard error, %) plus E_hull statistics."""
    table = aggregate((r.prompt_index, r.metrics) for r in rows)
    e_hull = [r.e_above_hull for r in rows if r.e_above_hull is not None]
    if e_hull:
        ordered = sorted(e_hull)
        table["e_above_hull"] = {
            "mean": sum(e_hull) / len(e_hull),
            "median": ordered[len(ordered) // 2],
            "n": len(e_hull),
            "sparse": sum(r.sparse_chemical_system for r in rows),
        }
    failures: dict[str, int] = {}
    for row in rows:
        for stage in row.errors or {}:
            failures[stage] = failures.get(stage, 0) + 1
    table["failures"] = failures
    return table


def samples_from_traces(traces_location: str | Path, splits: Sequence[str]) -> list[GeneratedSample]:
    """A trace set's own records as if they had been generated (the evaluation's sanity check)."""
    samples = []
    for split in splits:
        for line in (Path(traces_location) / f"{split}.jsonl").read_text().splitlines():
            record = json.loads(line)
            text = record["completion"][0]["content"]
            sample = GeneratedSample(
                prompt_index=len(samples), sample_index=0, prompt=record["prompt"][0]["content"],
                formula=record["formula"], material_id=record["material_id"], task=record["task"],
                targets=record["properties"], text=text, finish_reason="stop", n_tokens=0,
            )
            try:
                sample.structure = decode_structure(text).as_dict()
            except CodecError as exc:
                sample.parse_error = str(exc)
            samples.append(sample)
    return samples


def write_evaluation(
    registry: ArtifactRegistry,
    generation_id: str,
    config: EvaluateConfig,
    rows: Sequence[SampleEvaluation],
    samples: Sequence[GeneratedSample],
) -> ArtifactDoc:
    """Write ``metrics.json``, ``per_sample.jsonl`` and the report; register the evaluation."""
    from crystalreasoner.evaluation.report import write_report

    generation = registry.get(generation_id)
    table = summarize(rows)
    per_sample = "".join(json.dumps(r.to_dict()) + "\n" for r in rows)
    # one folder per config and result: evaluating again (another preset, new code) keeps the first
    key = sha256_json({"config": config.model_dump(mode="json"), "rows": sha256_json(per_sample)})[:16]
    out = Path(generation.location) / "evaluation" / key
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(table, indent=1))
    (out / "per_sample.jsonl").write_text(per_sample)
    files = [out / "metrics.json", out / "per_sample.jsonl", *write_report(rows, samples, table, out)]
    return registry.register(
        ArtifactKind.EVALUATION,
        name=f"evaluation of {generation.name}",
        config=config.model_dump(mode="json"),
        parents=[generation_id],
        files=files,
        location=out,
        summary=table,
    )


def generation_samples(registry: ArtifactRegistry, generation_id: str) -> list[GeneratedSample]:
    return load_samples(Path(registry.get(generation_id).location) / "samples.jsonl")


def evaluate_generation(
    registry: ArtifactRegistry, generation_id: str, config: EvaluateConfig | None = None
) -> ArtifactDoc:
    """Evaluate a generation batch in this process and register the result."""
    config = config or EvaluateConfig()
    samples = generation_samples(registry, generation_id)
    reference = (
        novelty_reference(config.novelty_dataset, config.novelty_splits)
        if config.novelty_dataset else None
    )
    rows = evaluate_samples(samples, config, reference=reference)
    return write_evaluation(registry, generation_id, config, rows, samples)
