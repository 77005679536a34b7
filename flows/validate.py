"""Validation flow: top candidates of an evaluation relaxed through atomate2/jobflow, DFT inputs
prepared, structures exported; the task documents land in the project's stores."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from crystalreasoner.config import load_config
from crystalreasoner.stores import open_registry
from crystalreasoner.validation.stage import ValidationConfig, validate_evaluation
from flows import BACKOFF, STAGE_CACHE


@task(retries=2, retry_delay_seconds=BACKOFF[:2], cache_policy=STAGE_CACHE, persist_result=True)
def validate(evaluation_id: str, config: dict, store: str | None) -> str:
    with open_registry(store) as registry:
        doc = validate_evaluation(registry, evaluation_id, ValidationConfig(**config))
    create_table_artifact(
        key="validation",
        table=doc.summary["records"],
        description=f"atomate2 relaxations of the top candidates of {evaluation_id}; DFT: {doc.summary['dft']['message']}",
    )
    return doc.artifact_id


@flow(name="validate")
def validate_flow(
    evaluation_id: str, preset: str | None = None, overrides: dict | None = None, store: str | None = None
) -> str:
    """Validate the best candidates of an evaluation; returns the validation artifact id."""
    config = load_config(ValidationConfig, preset, overrides)
    return validate(evaluation_id, config.model_dump(mode="json"), store)
