"""Suite-wide isolation and shared fixtures: no test writes into the user's project folder."""

import os
import tempfile

import pandas as pd
import pytest

# set before Prefect or the package read them; every test process gets its own scratch home
_SCRATCH = tempfile.mkdtemp(prefix="crysreas-tests-")
os.environ.setdefault("CRYSREAS_HOME", os.path.join(_SCRATCH, "home"))
os.environ["PREFECT_HOME"] = os.path.join(_SCRATCH, "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ.pop("CRYSREAS_STORE", None)


@pytest.fixture
def crysreas_home(tmp_path, monkeypatch):
    """A private project home: embedded store and analysis cache live under it."""
    home = tmp_path / "home"
    monkeypatch.setenv("CRYSREAS_HOME", str(home))
    monkeypatch.delenv("CRYSREAS_CACHE", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_cdvae_dir(tmp_path_factory):
    """A CDVAE-style folder (train/val/test CSVs) cut from the bundled MP-20 rows."""
    from crystalreasoner.data import bundled_data_dir

    folder = tmp_path_factory.mktemp("tiny-mp20")
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        frame = pd.read_csv(bundled_data_dir() / "mp_20_subset" / f"{split}.csv.gz")
        frame.head(n).to_csv(folder / f"{split}.csv", index=False)
    return folder


FAKE_MONGO_URI = "mongodb://crysreas:not-a-secret@mongo.invalid:27017/crystalreasoner"


@pytest.fixture
def mongomock_store(monkeypatch):
    """The shipped ``mongo`` store spec on mongomock (no MongoDB server can run here).

    maggma's ``MongoStore``/``GridFSStore`` get one shared in-memory client per URI, so separate
    stores (and separate flow tasks) see the same data, as they would on a real server.
    """
    import mongomock_ng
    import mongomock_ng.gridfs
    from maggma.stores import gridfs as maggma_gridfs
    from maggma.stores import mongolike as maggma_mongolike

    mongomock_ng.gridfs.enable_gridfs_integration()  # gridfs checks for pymongo's types

    class ServerClient(mongomock_ng.MongoClient):
        def close(self) -> None:  # mongomock wipes its data on close; a server keeps it
            pass

    clients: dict[str, ServerClient] = {}

    def shared_client(host=None, *args, **kwargs):
        if str(host) not in clients:
            clients[str(host)] = ServerClient(host, *args, **kwargs)
        return clients[str(host)]

    monkeypatch.setenv("CRYSREAS_MONGO_URI", FAKE_MONGO_URI)
    monkeypatch.setattr(maggma_mongolike, "MongoClient", shared_client)
    monkeypatch.setattr(maggma_gridfs, "MongoClient", shared_client)
    return "mongo"
