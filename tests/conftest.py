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
