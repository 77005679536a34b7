"""One temporary Prefect server for all flow tests, and a hand-made generation batch."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.stores import ArtifactKind


@pytest.fixture(scope="session")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def register_generation(registry, folder: Path, n_real: int = 4) -> str:
    """Real small MP-20 test crystals written as a model would, plus one broken sample."""
    records = [r for r in load_dataset("mp20-mini").records("test") if len(r.structure) <= 6][:n_real]
    texts = [encode_structure(r.structure) for r in records] + ["<CIF>\nP1\nbroken"]
    formulas = [r.formula for r in records] + [records[0].formula]
    samples = [
        parse_sample(GeneratedSample(i, 0, "p", formulas[i], None, "conditional", {}, t, "stop", 1))
        for i, t in enumerate(texts)
    ]
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text("".join(json.dumps(asdict(s)) + "\n" for s in samples))
    return registry.register(
        ArtifactKind.GENERATION, name="hand-made", config={}, files=[folder / "samples.jsonl"], location=folder
    ).artifact_id
