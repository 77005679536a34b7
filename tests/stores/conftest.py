"""A fresh registry on each backend that runs without a server."""

import pytest

from crystalreasoner.stores import ArtifactRegistry, load_store_spec


@pytest.fixture(params=["memory", "mongo"])
def registry(request, monkeypatch, tmp_path):
    """Registry from the shipped spec: MemoryStore, or MongoStore + GridFSStore on mongomock."""
    monkeypatch.setenv("CRYSREAS_HOME", str(tmp_path / "home"))
    spec = request.getfixturevalue("mongomock_store") if request.param == "mongo" else "memory"
    with ArtifactRegistry(load_store_spec(spec)) as registry:
        yield registry
