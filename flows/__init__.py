"""Prefect flows: thin orchestration over ``crystalreasoner`` stages (retries, UI, artifacts).

Every stage's main task is cached by its inputs (parent artifact ids, which are content hashes,
plus the stage config and store) with persisted results, so re-running a campaign or retrying a
failed flow run skips the stages that already finished and redoes only the rest.

These machines (and many clusters) have no route to Prefect's telemetry endpoint; analytics
are off unless the user turns them on.
"""

import os
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The stage cache (Prefect's persisted task results) lives beside the project's store, not in the
# user-wide $PREFECT_HOME: another checkout, or a wiped store, must never be handed artifact ids
# that only some other store holds. Set before Prefect reads its settings; a path the user set is
# kept, one we set is recomputed in child processes (workers) that run with another CRYSREAS_HOME.
if "PREFECT_RESULTS_LOCAL_STORAGE_PATH" not in os.environ or os.environ.get("CRYSREAS_RESULTS_FROM_HOME"):
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(
        (Path(os.environ.get("CRYSREAS_HOME", ".crysreas")) / "prefect-results").resolve()
    )
    os.environ["CRYSREAS_RESULTS_FROM_HOME"] = "1"

from prefect.cache_policies import INPUTS, TASK_SOURCE

#: a stage's result is reused when its code and inputs are unchanged
STAGE_CACHE = INPUTS + TASK_SOURCE
#: retries with back-off for stages that can fail transiently (I/O, stores, MLIP workers)
BACKOFF = [10, 60, 300]


def publish_summary(key: str, title: str, doc, description: str) -> None:
    """A Prefect markdown artifact for a stage's result: its id, files and summary as a table."""
    from prefect.artifacts import create_markdown_artifact

    rows = "\n".join(f"| {k} | {v} |" for k, v in doc.summary.items())
    create_markdown_artifact(
        key=key,
        markdown=f"## {title} `{doc.artifact_id}`\n\n`{doc.location}`\n\n| field | value |\n|---|---|\n{rows}",
        description=description,
    )
