"""A registered small trace set, and tiny model configs that train in seconds."""

import pytest

from crystalreasoner.stores import ArtifactRegistry, load_store_spec
from crystalreasoner.traces.builder import TraceConfig
from crystalreasoner.traces.stage import TraceStage

TINY_MODEL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "vocab_size": 400}


@pytest.fixture
def registry(crysreas_home):
    with ArtifactRegistry(load_store_spec("default")) as registry:
        yield registry


@pytest.fixture
def traces_id(registry, tiny_cdvae_dir):
    config = TraceConfig(describer="none", coord_decimals=3, lattice_decimals=2)
    return TraceStage(config).run(registry, tiny_cdvae_dir).artifact_id
