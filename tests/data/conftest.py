"""Bundled datasets, loaded once per test session (parsing ~5,000 structures takes seconds)."""

import pytest

from crystalreasoner.data import CrystalRecord, DatasetBundle, load_dataset


@pytest.fixture(scope="session")
def mp20_mini() -> DatasetBundle:
    return load_dataset("mp20-mini")


@pytest.fixture(scope="session")
def mp_binary_elastic() -> DatasetBundle:
    return load_dataset("mp-binary-elastic")


@pytest.fixture(scope="session")
def every_bundled_record() -> list[CrystalRecord]:
    """All structures shipped with the package, whatever their size."""
    return [
        record
        for name in ("mp20-mini", "mp-binary-elastic")
        for record in load_dataset(name, max_atoms=None).records()
    ]
