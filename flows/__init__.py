"""Prefect flows: thin orchestration over ``crystalreasoner`` stages (retries, UI, artifacts)."""
