"""The trace stage registers the dataset and the trace set, linked, in any store backend."""

from crystalreasoner.stores import ArtifactKind, ArtifactRegistry, load_store_spec
from crystalreasoner.traces.builder import TraceConfig
from crystalreasoner.traces.stage import TraceStage


def test_stage_registers_traces_with_their_dataset(tiny_cdvae_dir, crysreas_home):
    with ArtifactRegistry(load_store_spec("memory")) as registry:
        doc = TraceStage(TraceConfig(describer="none")).run(registry, tiny_cdvae_dir)
        again = TraceStage(TraceConfig(describer="none")).run(registry, tiny_cdvae_dir)
        assert again.artifact_id == doc.artifact_id  # idempotent re-run
        assert len(registry.find(kind="traces")) == 1
        (dataset,) = registry.lineage(doc.artifact_id)
    assert doc.kind == ArtifactKind.TRACES and dataset.kind == ArtifactKind.DATASET
    assert doc.summary["records"] == {"train": 6, "val": 2, "test": 2}
    assert again.summary["cache_hits"] == 10
    assert {f.name for f in doc.files} >= {"train.jsonl", "val.jsonl", "test.jsonl"}
    assert doc.config["describer"] == "none"
    assert (crysreas_home / "artifacts" / "traces").is_dir()
