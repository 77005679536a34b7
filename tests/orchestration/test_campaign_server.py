"""The campaign against a real ``prefect server`` on 127.0.0.1: deploy deployments/prefect.yaml,
run it through a process worker, fail a stage on purpose, retry the flow run through the API (as
the UI's Retry button does), and check that finished stages were cached, not recomputed, and that
the store holds each artifact once."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from crystalreasoner.data import load_dataset
from crystalreasoner.stores import open_registry

from .conftest import PREFECT, REPO, stop_process


def _wait_for_final_state(client, flow_run_id, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.read_flow_run(flow_run_id)
        if run.state and run.state.is_final():
            return run
        time.sleep(2)
    raise AssertionError(f"flow run {flow_run_id} did not finish in {timeout} s")


@pytest.mark.integration
def test_failed_stage_retried_from_the_api_reuses_finished_stages(server_env, tmp_path, tiny_cdvae_dir, monkeypatch):
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "CRYSREAS_HOME"):
        monkeypatch.setenv(key, server_env[key])
    run = lambda *args: subprocess.run([PREFECT, *args], env=server_env, cwd=REPO, check=True,
                                       capture_output=True, text=True, timeout=180)
    run("work-pool", "create", "crystalreasoner", "--type", "process")
    deployed = run("--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
    assert "'campaign/quick' successfully created" in deployed.stdout.replace("\n", " "), deployed.stdout
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "crystalreasoner"], env=server_env,
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    novelty_ref = tmp_path / "novelty-reference"  # absent at first: the evaluation stage fails
    campaign = tmp_path / "campaign.yaml"
    campaign.write_text(yaml.safe_dump({
        "dataset": str(tiny_cdvae_dir), "sft_preset": "tiny-cpu",
        "traces_overrides": {"describer": "none", "substitution": {"per_structure": 0}},
        "rl_preset": "tiny-cpu",
        "rl_overrides": {"reward": {"mlip": None}, "trl_args": {
            "max_steps": 1, "num_generations": 2, "per_device_train_batch_size": 2,
            "max_completion_length": 32, "save_steps": 1}},
        "n_prompts": 2, "n_samples": 2, "generate_overrides": {"max_new_tokens": 200},
        "evaluate_preset": "cheap", "evaluate_overrides": {"novelty_dataset": str(novelty_ref)},
        "validate_preset": "default", "validate_overrides": {"ranking": {"top_k": 1}, "relax": {"steps": 20}},
    }))
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    try:
        with temporary_settings({PREFECT_API_URL: server_env["PREFECT_API_URL"]}):
            flow_run = run_deployment("campaign/quick", parameters={"preset": str(campaign), "overrides": {}}, timeout=0)
            with get_client(sync_client=True) as client:
                first = _wait_for_final_state(client, flow_run.id)
                assert first.state.is_failed(), first.state
                novelty_ref.mkdir()  # the "network share" is back
                for record in load_dataset(str(tiny_cdvae_dir)).records()[:2]:
                    record.structure.to(filename=str(novelty_ref / f"{record.material_id}.cif"))
                client.set_flow_run_state(flow_run.id, Scheduled(name="AwaitingRetry", message="Retry from the UI"),
                                          force=True)
                second = _wait_for_final_state(client, flow_run.id)
                assert second.state.is_completed(), second.state.message
                assert second.run_count == 2
                task_runs = client.read_task_runs()
    finally:
        stop_process(worker)
    states = {}
    for task_run in task_runs:
        states.setdefault(task_run.task_key.split(".")[-1] if task_run.task_key else task_run.name, []).append(
            task_run.state_name)
    # the stages that finished before the failure ran once and were served from the cache on retry
    for stage in ("build_traces", "shipped_checkpoint_id", "reinforce", "sample"):
        names = next(v for k, v in states.items() if stage in k)
        assert sorted(names) == ["Cached", "Completed"], (stage, names)
    with open_registry() as registry:
        kinds = [doc.kind for doc in registry.find()]
    assert kinds.count("traces") == 1 and kinds.count("generation") == 1
    assert kinds.count("evaluation") == 1 and kinds.count("campaign") == 1
    assert kinds.count("checkpoint") == 2  # the shipped one and the RL one, each once
