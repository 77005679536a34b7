"""Build prompt/completion datasets of thinking traces from a crystal dataset (SPEC §3).

Analyses (the expensive part) run in parallel over structures and are cached by structure hash;
rendering (prompt phrasing, property order, augmentation) is seeded per material and variant, so
a given config and seed always produce the same records.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, ClassVar

from pymatgen.core import Structure

from crystalreasoner.config import StageConfig
from crystalreasoner.data import CrystalRecord, DatasetBundle
from crystalreasoner.data.codec import CodecConfig, SiteLabels, encode_structure
from crystalreasoner.hashing import sha256_json, structure_hash
from crystalreasoner.tasks import Task
from crystalreasoner.traces.analysis import (
    StructureAnalysis,
    analyze_structure,
    symmetry_signature,
)
from crystalreasoner.traces.augment import AugmentConfig, augment_structure
from crystalreasoner.traces.cache import AnalysisCache
from crystalreasoner.traces.describers import Describer, crystalnn_tools
from crystalreasoner.traces.prompts import (
    element_counts,
    formula_text,
    render_prompt,
    task_applies,
)
from crystalreasoner.traces.render import render_thinking
from crystalreasoner.traces.substitute import (
    SubstitutionConfig,
    is_substitute,
    substitution_records,
)

Progress = Callable[[int, int], None]  # (done, total)


class TraceConfig(StageConfig):
    """What the trace set contains; presets live in ``crystalreasoner/presets/traces``."""

    preset_folder: ClassVar[str] = "traces"
    describer: Describer = "crystalnn"
    thinking: bool = True  # False: the answer is the structure block only (ablation)
    tasks: tuple[Task, ...] = (Task.CONDITIONAL,)
    print_wyckoff: bool = False
    property_decimals: int = 3
    coord_decimals: int = 8
    lattice_decimals: int = 4
    site_labels: SiteLabels = "none"  # Mg1 Mg2 O1 (ascending) or Mg2 Mg1 O1 (remaining); data/codec.py
    restate_composition: bool = False  # the trace ends on "Sites to write: Mg2 O2." (render.py)
    explicit_counts: float = 0.0  # probability that a prompt states the cell's element counts
    variants_per_structure: int = 1  # phrasings/augmentations of each training structure
    augment: AugmentConfig = AugmentConfig()
    augment_eval_splits: bool = False  # val/test keep one plain variant unless this is set
    substitution: SubstitutionConfig = SubstitutionConfig()  # hypothetical training crystals
    rebalance_power: float = 0.0  # weight ~ (count of n_elements)^-power; 0 = uniform
    oversample: bool = False  # turn weights into extra training variants instead of a column
    seed: int = 0
    n_jobs: int | None = None  # worker processes for analyses; None = all cores


def codec_config(trace_config: dict[str, Any]) -> CodecConfig:
    """How a trace set (its config, as stored in its artifact) writes structure blocks; sets
    built before ``site_labels`` existed wrote none, and ``true`` was ``ascending``."""
    labels = trace_config.get("site_labels", "none")
    if isinstance(labels, bool):
        labels = "ascending" if labels else "none"
    return CodecConfig(trace_config["coord_decimals"], trace_config["lattice_decimals"], labels)


@dataclass
class TraceRecord:
    """One training example plus the metadata needed to evaluate what the model makes of it."""

    prompt: list[dict[str, str]]  # chat messages: the user request
    completion: list[dict[str, str]]  # chat messages: the assistant answer
    task: str
    material_id: str
    split: str
    variant: int
    formula: str
    n_elements: int
    n_atoms: int
    sample_weight: float
    structure_hash: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceSet:
    """Trace records per split, with the counts that go into the artifact summary."""

    config: TraceConfig
    splits: dict[str, list[TraceRecord]]
    failures: list[dict[str, str]]  # structures whose analysis failed: material_id, reason
    cache_hits: int = 0
    computed: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "records": {split: len(recs) for split, recs in self.splits.items()},
            "analysis_failures": len(self.failures),
            "cache_hits": self.cache_hits,
            "computed": self.computed,
        }

    def fingerprint(self) -> str:
        return sha256_json({s: [asdict(r) for r in recs] for s, recs in self.splits.items()})

    def write_jsonl(self, out_dir: str | Path) -> list[Path]:
        """One ``<split>.jsonl`` per split (plus ``failures.jsonl``); returns the files."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for split, records in self.splits.items():
            path = out / f"{split}.jsonl"
            with path.open("w") as handle:
                for record in records:
                    handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            paths.append(path)
        path = out / "failures.jsonl"
        path.write_text("".join(json.dumps(f) + "\n" for f in self.failures))
        return [*paths, path]

    @classmethod
    def read_jsonl(cls, folder: str | Path, config: TraceConfig) -> TraceSet:
        """The splits that ``write_jsonl`` wrote to ``folder`` (the failures are not read back)."""
        splits = {
            path.stem: [TraceRecord(**json.loads(line)) for line in path.read_text().splitlines()]
            for path in sorted(Path(folder).glob("*.jsonl")) if path.stem != "failures"
        }
        return cls(config, splits, failures=[])

    def to_hf(self):
        """A ``datasets.DatasetDict`` with one split per trace split."""
        from datasets import Dataset, DatasetDict

        return DatasetDict(
            {
                split: Dataset.from_list(
                    [{**asdict(r), "properties": json.dumps(r.properties)} for r in records]
                )
                for split, records in self.splits.items()
            }
        )


def _analyze_worker(structure_dict: dict, describer: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return analyze_structure(Structure.from_dict(structure_dict), describer).to_dict()


def analyze_records(
    records: list[CrystalRecord],
    describer: Describer,
    cache: AnalysisCache,
    *,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, StructureAnalysis], dict[str, str], int]:
    """Analyses by structure hash, from the cache or computed in parallel.

    Returns the analyses, the failures (structure hash -> reason) and the number of cache hits.
    A structure whose analysis fails is reported, not fatal.
    """
    by_hash = {structure_hash(r.structure): r.structure for r in records}
    analyses = cache.get_many(list(by_hash), describer)
    hits = len(analyses)
    missing = [h for h in by_hash if h not in analyses]
    failures: dict[str, str] = {}
    done = hits
    if progress:
        progress(done, len(by_hash))
    def record(key: str, compute: Callable[[], dict]) -> None:
        nonlocal done
        try:
            analyses[key] = StructureAnalysis.from_dict(compute())
            cache.put(key, describer, analyses[key])
        except Exception as exc:  # a broken structure is recorded, the batch goes on
            failures[key] = f"{type(exc).__name__}: {exc}"
        done += 1
        if progress:
            progress(done, len(by_hash))

    workers = min(n_jobs or os.cpu_count() or 1, len(missing))
    if workers <= 1:
        for key in missing:
            record(key, lambda: _analyze_worker(by_hash[key].as_dict(), describer))
    elif missing:
        if describer != "none":
            crystalnn_tools()  # load matminer once; forked workers inherit it
        # fork: workers inherit the imports and need no `__main__` guard in user scripts
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            futures = {
                pool.submit(_analyze_worker, by_hash[h].as_dict(), describer): h for h in missing
            }
            for future in as_completed(futures):
                record(futures[future], future.result)
    return analyses, failures, hits


def element_count_weights(n_elements: list[int], power: float) -> list[float]:
    """Per-sample weights ~ count(n_elements)^-power, normalised to mean 1.

    The bundled data is 85 % binaries; power 1 gives every element count equal total weight.
    """
    counts = Counter(n_elements)
    raw = [counts[n] ** -power for n in n_elements]
    mean = sum(raw) / len(raw) if raw else 1.0
    return [w / mean for w in raw]


def _rng(seed: int, *parts: object) -> random.Random:
    # string seeds are hashed with sha512 by `random`, stable across runs and machines
    return random.Random(":".join(map(str, (seed, *parts))))


def render_record(
    record: CrystalRecord,
    analysis: StructureAnalysis,
    task: Task,
    variant: int,
    config: TraceConfig,
    *,
    augment: bool,
    weight: float = 1.0,
) -> TraceRecord:
    """One prompt/completion pair for ``record`` (deterministic in seed, material, task, variant)."""
    rng = _rng(config.seed, record.material_id, task.value, variant)
    n_atoms = len(record.structure)
    counts = (
        element_counts(analysis.composition, analysis.elements)
        if rng.random() < config.explicit_counts
        else None
    )
    formula = formula_text(record.structure.composition)
    prompt = render_prompt(
        task, formula, record.properties, rng, counts=counts
    )
    order = config.augment.atom_order  # a sorted order is the format's; a shuffle augments
    as_given = AugmentConfig(atom_order="element" if order == "shuffled" else order)
    for rewriting in [config.augment, as_given] if augment else [as_given]:
        structure = augment_structure(record.structure, rewriting, rng, config.coord_decimals)
        if symmetry_signature(structure, analysis.symprec) == analysis.signature():
            break
    else:
        # a rewriting (even of the line order) can tip a borderline symmetry over the
        # tolerance; the block must show what the trace states, so keep the analysed cell
        structure = augment_structure(record.structure, AugmentConfig(), rng)
    block = encode_structure(structure, codec_config(config.model_dump()))
    answer = block
    if config.thinking:
        thinking = render_thinking(
            analysis,
            record.properties,
            rng,
            describer=config.describer,
            print_wyckoff=config.print_wyckoff,
            property_decimals=config.property_decimals,
            restate_composition=config.restate_composition,
        )
        answer = f"{thinking}\n{block}"
    return TraceRecord(
        prompt=[{"role": "user", "content": prompt}],
        completion=[{"role": "assistant", "content": answer}],
        task=task.value,
        material_id=record.material_id,
        split=record.split or "train",
        variant=variant,
        formula=formula,
        n_elements=record.n_elements,
        n_atoms=n_atoms,
        sample_weight=weight,
        structure_hash=structure_hash(record.structure),
        properties=dict(record.properties),
    )


def build_trace_set(
    bundle: DatasetBundle,
    config: TraceConfig,
    cache: AnalysisCache,
    *,
    progress: Progress | None = None,
) -> TraceSet:
    """Render the trace records of every split of ``bundle``.

    Substituted crystals (``config.substitution``) join the training split with one variant each
    and no properties; they are analysed like the others.
    """
    held_out = {r.formula for split, recs in bundle.splits.items() if split != "train" for r in recs}
    substitutes = substitution_records(
        bundle.splits.get("train", []), config.substitution, config.seed, held_out
    )
    all_records = [r for records in bundle.splits.values() for r in records] + substitutes
    analyses, failed, hits = analyze_records(
        all_records, config.describer, cache, n_jobs=config.n_jobs, progress=progress
    )
    failures = []
    splits: dict[str, list[TraceRecord]] = {}
    for split, records in bundle.splits.items():
        usable = []
        for record in records + (substitutes if split == "train" else []):
            key = structure_hash(record.structure)
            if key in failed:
                failures.append({"material_id": record.material_id, "reason": failed[key]})
            else:
                usable.append(record)
        is_train = split == "train"
        weights = element_count_weights([r.n_elements for r in usable], config.rebalance_power)
        out = []
        for record, weight in zip(usable, weights):
            analysis = analyses[structure_hash(record.structure)]
            augment = is_train or config.augment_eval_splits
            n_variants = config.variants_per_structure if augment else 1
            if is_substitute(record):
                n_variants = 1
            if is_train and config.oversample:
                n_variants = max(1, round(n_variants * weight))
                weight = 1.0
            for task in config.tasks:
                if not task_applies(task, record.properties, len(record.structure)):
                    continue
                out += [
                    render_record(
                        record, analysis, task, v, config, augment=augment, weight=weight
                    )
                    for v in range(n_variants)
                ]
        splits[split] = out
    return TraceSet(
        config=config,
        splits=splits,
        failures=failures,
        cache_hits=hits,
        computed=len(analyses) - hits,
    )
