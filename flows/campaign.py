"""The discovery campaign: trace construction, SFT (or the shipped checkpoint), RL, generation,
evaluation and validation as subflows, then a report. Every stage is cached by its inputs, so a
re-run or a retried flow run redoes only what did not finish.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from crystalreasoner.campaign import CampaignConfig, write_campaign_report
from crystalreasoner.config import load_config
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactKind, open_registry
from crystalreasoner.stores.registry import register_checkpoint_folder
from crystalreasoner.traces.builder import TraceConfig
from crystalreasoner.training.models import check_model_source
from crystalreasoner.training.sft import SFTConfig
from flows import STAGE_CACHE
from flows.evaluate import evaluate_flow
from flows.generate import generate_flow
from flows.rl import rl_flow
from flows.sft import sft_flow
from flows.traces import traces_flow
from flows.validate import validate_flow


@task(cache_policy=STAGE_CACHE, persist_result=True)
def shipped_checkpoint_id(name: str, store: str | None) -> str:
    """Register the checkpoint shipped with the package (trained by our own SFT flow; its model
    card names the trace set it saw)."""
    from crystalreasoner.checkpoints import shipped_checkpoint

    with open_registry(store) as registry:
        return register_checkpoint_folder(registry, shipped_checkpoint(name), f"shipped {name}", {"shipped": name})


@task
def report(config: dict, stages: dict, ids: dict, store: str | None) -> str:
    with open_registry(store) as registry:
        docs = {name: registry.get(artifact_id) for name, artifact_id in ids.items() if artifact_id}
        out = registry.spec.files_root / "campaigns" / sha256_json(ids)[:16]
        path = write_campaign_report(
            out, stages,
            Path(docs["checkpoint"].location), Path(docs["rl"].location) if "rl" in docs else None,
            docs["evaluation"].summary,
            Path(docs["validation"].location) if "validation" in docs else None,
            docs["validation"].summary if "validation" in docs else None,
        )
        doc = registry.register(
            ArtifactKind.CAMPAIGN, name="campaign report", config=config,
            parents=[docs["validation" if "validation" in docs else "evaluation"].artifact_id],
            files=sorted(out.iterdir()), location=out, summary={"stages": stages},
        )
    create_markdown_artifact(key="campaign-report", markdown=path.read_text(), description="campaign report")
    return doc.artifact_id


def _task_runner(config: CampaignConfig):
    if config.task_runner == "threads":
        return None
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        return DaskTaskRunner(address=config.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": config.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


@flow(name="campaign")
def campaign_flow(preset: str = "quick", overrides: dict | None = None) -> dict:
    """Run (or resume) a campaign from a preset or YAML file; returns stage ids and timings."""
    logger = get_run_logger()
    config = load_config(CampaignConfig, preset, overrides)
    store = config.store
    stages: dict[str, dict] = {}
    ids: dict[str, str] = {}

    def stage(name: str, run):
        started = time.perf_counter()
        ids[name] = run()
        stages[name] = {"artifact": ids[name], "seconds": round(time.perf_counter() - started, 1)}
        logger.info("stage %s: %s (%.0f s)", name, ids[name], stages[name]["seconds"])
        return ids[name]

    sft = load_config(SFTConfig, config.sft_preset, config.sft_overrides)
    if config.retrain:
        check_model_source(sft.model)
    trace_config = load_config(TraceConfig, sft.traces_preset, config.traces_overrides).model_dump(mode="json")
    traces_id = stage("traces", lambda: traces_flow(config.dataset, trace_config, config.max_atoms, store))
    if config.retrain:
        checkpoint = stage("checkpoint", lambda: sft_flow(config.sft_preset, config.sft_overrides, store))
    else:
        checkpoint = stage("checkpoint", lambda: shipped_checkpoint_id(config.sft_preset, store))
    if config.rl_preset:
        checkpoint = stage("rl", lambda: rl_flow(checkpoint, config.rl_preset, config.rl_overrides, traces_id, store))
    generate = {"n_samples": config.n_samples, **config.generate_overrides}
    generation_id = stage(
        "generation", lambda: generate_flow(checkpoint, traces_id, config.split, config.n_prompts, generate, store)
    )
    evaluate = evaluate_flow
    if runner := _task_runner(config):
        evaluate = evaluate_flow.with_options(task_runner=runner)
    evaluation_id = stage("evaluation", lambda: evaluate(
        generation_id, config.evaluate_preset, config.evaluate_overrides, config.shards, store
    ))
    if config.validate_preset:
        stage("validation", lambda: validate_flow(evaluation_id, config.validate_preset, config.validate_overrides, store))
    ids["report"] = report(config.model_dump(mode="json"), stages, ids, store)
    return {"ids": ids, "stages": stages}
