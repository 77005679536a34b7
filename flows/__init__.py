"""Prefect flows: thin orchestration over ``crystalreasoner`` stages (retries, UI, artifacts).

These machines (and many clusters) have no route to Prefect's telemetry endpoint; analytics
are off unless the user turns them on.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
