"""Prefect servers for the flow tests (a temporary one per session, and a real `prefect server`
process on loopback), and a hand-made generation batch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import pytest
from prefect.testing.utilities import prefect_test_harness

from crystalreasoner.data import encode_structure, load_dataset
from crystalreasoner.generation.stage import GeneratedSample, parse_sample
from crystalreasoner.stores import ArtifactKind

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen) -> None:
    """STACK.md: a process worker needs SIGTERM, then SIGINT, to exit."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                continue
    if process.poll() is None:
        process.kill()


@pytest.fixture
def server_env(tmp_path, crysreas_home):
    """A real ``prefect server start --host 127.0.0.1`` with its own home; yields its env."""
    port = _free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "CRYSREAS_RESULTS_FROM_HOME"}
    env = {
        **inherited,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        # flow-run processes load Prefect's settings before they import `flows`: give them this
        # test's own stage cache, not the one this pytest process set for itself
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(crysreas_home / "prefect-results"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "CRYSREAS_HOME": str(crysreas_home),
        "CRYSREAS_REPO": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(1)
    else:
        stop_process(server)
        pytest.fail("prefect server did not answer /api/health within 120 s")
    yield env
    # deliver what this process still queues for that server (logs, events) before it goes:
    # otherwise a later drain (e.g. prefect_test_harness's exit) waits for it forever
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=30)
    stop_process(server)


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
