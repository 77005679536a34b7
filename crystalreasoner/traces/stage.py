"""The trace-construction stage: dataset in, registered trace set out (no Prefect needed)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from datasets import disable_progress_bars

from crystalreasoner.data import DatasetBundle, load_dataset
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.traces.builder import Progress, TraceConfig, build_trace_set
from crystalreasoner.traces.cache import AnalysisCache


def register_dataset(registry: ArtifactRegistry, bundle: DatasetBundle, max_atoms: int | None) -> ArtifactDoc:
    """Record a dataset by fingerprint; its skipped rows are written next to it, with reasons."""
    fingerprint = bundle.fingerprint()
    out = registry.spec.files_root / "datasets" / fingerprint[:16]
    out.mkdir(parents=True, exist_ok=True)
    skipped = out / "skipped.jsonl"
    skipped.write_text("".join(json.dumps(asdict(row)) + "\n" for row in bundle.skipped))
    return registry.register(
        ArtifactKind.DATASET,
        name=bundle.name,
        config={"name": bundle.name, "max_atoms": max_atoms},
        files=[skipped],
        content_hash=fingerprint,
        location=out,
        summary=bundle.summary(),
    )


@dataclass
class TraceStage:
    """Build the trace set of a dataset and register both (SPEC §3).

    The output folder holds ``<split>.jsonl`` (chat-format prompt/completion records with
    metadata), ``failures.jsonl`` and ``hf/`` (a ``datasets.DatasetDict`` saved to disk).
    """

    config: TraceConfig

    def run(
        self,
        registry: ArtifactRegistry,
        dataset: str | Path,
        *,
        max_atoms: int | None = 20,
        cache: AnalysisCache | None = None,
        progress: Progress | None = None,
    ) -> ArtifactDoc:
        bundle = load_dataset(dataset, max_atoms=max_atoms)
        dataset_doc = register_dataset(registry, bundle, max_atoms)
        own_cache = cache is None
        cache = cache or AnalysisCache()
        try:
            trace_set = build_trace_set(bundle, self.config, cache, progress=progress)
        finally:
            if own_cache:
                cache.close()
        fingerprint = trace_set.fingerprint()
        out = registry.spec.files_root / "traces" / fingerprint[:16]
        files = trace_set.write_jsonl(out)
        disable_progress_bars()  # the stage reports its own progress
        trace_set.to_hf().save_to_disk(str(out / "hf"))
        return registry.register(
            ArtifactKind.TRACES,
            name=f"traces of {bundle.name}",
            config=self.config.model_dump(mode="json"),
            parents=[dataset_doc.artifact_id],
            files=files,
            content_hash=fingerprint,
            location=out,
            summary=trace_set.summary(),
        )
