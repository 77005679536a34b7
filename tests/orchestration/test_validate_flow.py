"""The validation flow with the store swapped for MongoStore + GridFSStore on mongomock: atomate2
relaxations recorded as task documents, linked to their candidates and the generation."""

import pytest

from crystalreasoner.stores import load_store_spec, open_registry
from crystalreasoner.validation.stage import task_lineage
from flows.evaluate import evaluate_flow
from flows.validate import validate_flow

from .conftest import register_generation


@pytest.mark.integration
def test_validation_flow_on_mongo_stores(prefect_server, crysreas_home, mongomock_store):
    with open_registry(mongomock_store) as registry:
        generation_id = register_generation(registry, crysreas_home / "gen")
    evaluation_id = evaluate_flow(generation_id, "cheap", {"novelty_splits": ["train"]}, store=mongomock_store)
    overrides = {"ranking": {"top_k": 2}, "relax": {"steps": 60}}
    validation_id = validate_flow(evaluation_id, "default", overrides, store=mongomock_store)
    with open_registry(mongomock_store) as registry:
        doc = registry.get(validation_id)
        chain = [d.kind for d in registry.lineage(validation_id)]
    assert chain == ["evaluation", "generation"]
    assert doc.summary["candidates"] == 2 and doc.summary["relaxed"] == 2
    job_store = load_store_spec(mongomock_store).job_store()
    job_store.connect()
    for record in doc.summary["records"]:
        task = job_store.query_one({"uuid": record["job_uuid"]}, load=True)
        assert task["metadata"]["generation"] == generation_id
        assert task["metadata"]["candidate"] == record["candidate"]
        assert "CHGNet" in str(task["output"]["forcefield_name"])
        assert task["output"]["structure"] and record["e_above_hull_eV_per_atom"] is not None
    with open_registry(mongomock_store) as registry:  # from a task document back to the generation
        task, chain = task_lineage(registry, doc.summary["records"][0]["job_uuid"], job_store)
    assert task["candidate"] == doc.summary["records"][0]["candidate"] and task["energy_eV"] < 0
    assert [d.artifact_id for d in chain] == [validation_id, evaluation_id, generation_id]
    names = {f.name for f in doc.files}
    assert {"export/structures.extxyz", "export/candidates.csv"} <= names
    assert sum(n.startswith("export/cifs/") for n in names) == 2
    dft = doc.summary["dft"]
    assert dft["status"] == "inputs-written" and "no VASP executable" in dft["message"]
