"""The campaign end to end with the evaluation's MLIP shards on a local Dask cluster of 2 worker
processes (prefect-dask's DaskTaskRunner), reporting to a real Prefect server on loopback (the
worker processes inherit its address from the environment)."""

import pytest

from crystalreasoner.stores import open_registry
from flows.campaign import campaign_flow


@pytest.mark.integration
def test_campaign_with_the_dask_task_runner(server_env, monkeypatch, tiny_cdvae_dir):
    for key in ("PREFECT_HOME", "PREFECT_API_URL", "CRYSREAS_HOME"):
        monkeypatch.setenv(key, server_env[key])
    overrides = {
        "dataset": str(tiny_cdvae_dir),
        "traces_overrides": {"describer": "none", "substitution": {"per_structure": 0}},
        "rl_preset": None,
        "n_prompts": 2, "n_samples": 3, "generate_overrides": {"seed": 1},
        "evaluate_preset": "full", "evaluate_overrides": {"mlip": "reward", "novelty_splits": ["train"]},
        "validate_overrides": {"ranking": {"top_k": 1}, "relax": {"steps": 20}},
        "task_runner": "dask", "dask_workers": 2, "shards": 2,
    }
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server_env["PREFECT_API_URL"]}):
        result = campaign_flow("quick", overrides)
    assert set(result["stages"]) == {"traces", "checkpoint", "generation", "evaluation", "validation"}
    with open_registry() as registry:
        evaluation = registry.get(result["ids"]["evaluation"]).summary
        report = registry.get(result["ids"]["report"])
    assert evaluation["parsed"]["mean"] > 0
    relaxed = evaluation.get("e_above_hull", {}).get("n", 0) + evaluation["failures"].get("mlip", 0)
    assert relaxed > 0  # the MLIP shards ran on the Dask workers
    assert (report.location and "report.md" in {f.name for f in report.files})
