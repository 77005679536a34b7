"""A fresh registry on each backend that runs without a server."""

import mongomock_ng
import mongomock_ng.gridfs
import pytest
from maggma.stores import gridfs as maggma_gridfs
from maggma.stores import mongolike as maggma_mongolike

from crystalreasoner.stores import ArtifactRegistry, load_store_spec

# gridfs checks isinstance(db, pymongo Database); this widens those checks to mongomock's types.
mongomock_ng.gridfs.enable_gridfs_integration()

FAKE_MONGO_URI = "mongodb://crysreas:not-a-secret@mongo.invalid:27017/crystalreasoner"


@pytest.fixture(params=["memory", "mongo"])
def registry(request, monkeypatch, tmp_path):
    """Registry from the shipped spec: MemoryStore, or MongoStore + GridFSStore on mongomock."""
    monkeypatch.setenv("CRYSREAS_HOME", str(tmp_path / "home"))
    if request.param == "mongo":
        monkeypatch.setenv("CRYSREAS_MONGO_URI", FAKE_MONGO_URI)
        monkeypatch.setattr(maggma_mongolike, "MongoClient", mongomock_ng.MongoClient)
        monkeypatch.setattr(maggma_gridfs, "MongoClient", mongomock_ng.MongoClient)
    with ArtifactRegistry(load_store_spec(request.param)) as registry:
        yield registry
