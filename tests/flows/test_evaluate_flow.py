"""The evaluation flow on a temporary Prefect server: cheap checks, MLIP relaxations in two
shards, the report and the registered evaluation linked to its generation."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.stores import ArtifactKind, open_registry
from flows.evaluate import evaluate_flow


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _register_generation(registry, folder: Path) -> str:
    records = [r for r in load_dataset("mp20-mini").records("test") if len(r.structure) <= 6][:4]
    texts = [encode_structure(r.structure) for r in records] + ["<CIF>\nP1\nbroken"]
    samples = [
        parse_sample(GeneratedSample(i, 0, "p", (records + records)[i].formula, None, "conditional", {}, t, "stop", 1))
        for i, t in enumerate(texts)
    ]
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(asdict(s)) + "\n" for s in samples))
    return registry.register(
        ArtifactKind.GENERATION, name="hand-made", config={}, files=[folder / "samples.jsonl"], location=folder
    ).artifact_id


@pytest.mark.integration
def test_evaluate_flow_relaxes_in_shards_and_registers(prefect_server, crysreas_home):
    with open_registry("default") as registry:
        generation_id = _register_generation(registry, crysreas_home / "gen")
    overrides = {"mlip": "reward", "novelty_splits": ["test"]}
    evaluation_id = evaluate_flow(generation_id, "full", overrides, shards=2, store="default")
    with open_registry("default") as registry:
        doc = registry.get(evaluation_id)
        assert [d.artifact_id for d in registry.lineage(evaluation_id)] == [generation_id]
    table = doc.summary
    assert table["parsed"]["mean"] == 80 and table["novel"]["mean"] == 0
    assert table["e_above_hull"]["n"] == 4 and table["failures"] == {"parse": 1}
    rows = [json.loads(line) for line in (Path(doc.location) / "per_sample.jsonl").read_text().splitlines()]
    assert sum(r["relaxed_structure"] is not None for r in rows) == 4
    assert {p.name for p in Path(doc.location).glob("*.png")} >= {"e_hull_histogram.png", "validity_by_atoms.png"}
