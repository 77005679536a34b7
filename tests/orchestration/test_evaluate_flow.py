"""The evaluation flow on a temporary Prefect server: cheap checks, MLIP relaxations in two
shards, the report and the registered evaluation linked to its generation."""

import json
from pathlib import Path

import pytest

from crystalreasoner.stores import open_registry
from flows.evaluate import evaluate_flow

from .conftest import register_generation


@pytest.mark.integration
def test_evaluate_flow_relaxes_in_shards_and_registers(prefect_server, crysreas_home):
    with open_registry("default") as registry:
        generation_id = register_generation(registry, crysreas_home / "gen")
    overrides = {"mlip": "reward", "novelty_splits": ["test"]}
    evaluation_id = evaluate_flow(generation_id, "full", overrides, shards=2, store="default")
    with open_registry("default") as registry:
        doc = registry.get(evaluation_id)
        assert [d.artifact_id for d in registry.lineage(evaluation_id)] == [generation_id]
    table = doc.summary
    assert table["parsed"]["mean"] == 80 and table["novel"]["mean"] == 0
    rows = [json.loads(line) for line in (Path(doc.location) / "per_sample.jsonl").read_text().splitlines()]
    unrelaxed = [r["errors"] for r in rows if r["relaxed_structure"] is None]
    assert len(rows) - len(unrelaxed) == 4, unrelaxed  # the reasons, if a relaxation failed
    assert table["e_above_hull"]["n"] == 4 and table["failures"] == {"parse": 1}
    assert {p.name for p in Path(doc.location).glob("*.png")} >= {"e_hull_histogram.png", "validity_by_atoms.png"}
