"""Small real datasets for trace tests (analyses of a few structures take seconds)."""

import pytest

from crystalreasoner.data import DatasetBundle, load_dataset
from crystalreasoner.traces.cache import AnalysisCache


@pytest.fixture(scope="session")
def mp20():
    return load_dataset("mp20-mini")


@pytest.fixture(scope="session")
def small_bundle(mp20):
    """A handful of real structures per split: binaries, ternaries and larger."""
    return DatasetBundle(
        "mp20-small",
        {"train": mp20.splits["train"][:8], "val": mp20.splits["val"][:3], "test": mp20.splits["test"][:3]},
    )


@pytest.fixture
def cache(tmp_path):
    with AnalysisCache(tmp_path / "analyses.sqlite") as cache:
        yield cache
