"""Prefect flows: thin orchestration over ``crystalreasoner`` stages (retries, UI, artifacts).

Every stage's main task is cached by its inputs (parent artifact ids, which are content hashes,
plus the stage config and store) with persisted results, so re-running a campaign or retrying a
failed flow run skips the stages that already finished and redoes only the rest.

These machines (and many clusters) have no route to Prefect's telemetry endpoint; analytics
are off unless the user turns them on.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect.cache_policies import INPUTS, TASK_SOURCE  # noqa: E402

#: a stage's result is reused when its code and inputs are unchanged
STAGE_CACHE = INPUTS + TASK_SOURCE
#: retries with back-off for stages that can fail transiently (I/O, stores, MLIP workers)
BACKOFF = [10, 60, 300]
