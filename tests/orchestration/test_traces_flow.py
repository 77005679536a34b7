"""The trace flow on a real (temporary) Prefect server, registering into the embedded store."""

import pytest

from crystalreasoner.stores import open_registry
from flows.traces import traces_flow


@pytest.mark.integration
def test_traces_flow_registers_the_trace_set(prefect_server, tiny_cdvae_dir, crysreas_home):
    artifact_id = traces_flow(str(tiny_cdvae_dir), {"describer": "none"}, 20, "default")
    with open_registry("default") as registry:
        doc = registry.get(artifact_id)
        lineage = registry.lineage(artifact_id)
    assert doc.summary["records"]["train"] == 6
    assert [d.kind for d in lineage] == ["dataset"]
    assert (crysreas_home / "store").exists()  # the embedded MontyDB store, on disk
