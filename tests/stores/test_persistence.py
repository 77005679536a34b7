"""The default (embedded MontyDB) registry keeps its artifacts across process restarts."""

import os
import subprocess
import sys
from pathlib import Path

from crystalreasoner.stores import open_registry

REPO_ROOT = Path(__file__).resolve().parents[2]

WRITE = """
from crystalreasoner.stores import open_registry
with open_registry() as registry:
    dataset = registry.register("dataset", name="mp20", config={"split": "train"})
    traces = registry.register("traces", name="t", config={}, parents=[dataset.artifact_id])
    model = registry.register("checkpoint", name="sft", config={}, parents=[traces.artifact_id])
print(model.artifact_id, traces.artifact_id, dataset.artifact_id)
"""

READ_LINEAGE = """
import sys
from crystalreasoner.stores import open_registry
with open_registry() as registry:
    print(*(doc.artifact_id for doc in registry.lineage(sys.argv[1])))
"""


def _python(code, *args):
    """Run ``code`` in a fresh interpreter and return the words it prints."""
    pythonpath = os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": pythonpath}
    result = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_default_registry_survives_restart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stores/ here: the packaged default spec is used
    monkeypatch.setenv("CRYSREAS_HOME", str(tmp_path))
    monkeypatch.delenv("CRYSREAS_STORE", raising=False)

    model, traces, dataset = _python(WRITE)

    assert _python(READ_LINEAGE, model) == [traces, dataset]
    with open_registry() as registry:
        assert registry.spec.docs.type == "MontyStore"
        assert [doc.artifact_id for doc in registry.lineage(model)] == [traces, dataset]
        assert registry.get(dataset).config == {"split": "train"}
    assert (tmp_path / "store" / "crystalreasoner").is_dir()
