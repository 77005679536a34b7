"""A persistent cache of structure analyses keyed by structure hash (SQLite, no server).

Robocrystallographer costs seconds per structure, so a rebuilt trace set must not recompute it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from crystalreasoner.traces.analysis import ANALYSIS_VERSION, StructureAnalysis


def default_cache_path() -> Path:
    """``$CRYSREAS_CACHE`` or ``$CRYSREAS_HOME/cache`` (default ``./.crysreas/cache``)."""
    root = os.environ.get("CRYSREAS_CACHE") or Path(os.environ.get("CRYSREAS_HOME", ".crysreas")) / "cache"
    return Path(root) / "analyses.sqlite"


class AnalysisCache:
    """``(structure hash, describer) -> StructureAnalysis``; entries of older versions are ignored."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS analyses ("
            " structure_hash TEXT, describer TEXT, version INTEGER, analysis TEXT,"
            " PRIMARY KEY (structure_hash, describer, version))"
        )

    def get_many(self, hashes: list[str], describer: str) -> dict[str, StructureAnalysis]:
        found = {}
        for start in range(0, len(hashes), 500):  # SQLite caps bound parameters per statement
            chunk = hashes[start : start + 500]
            rows = self._db.execute(
                f"SELECT structure_hash, analysis FROM analyses WHERE describer = ? AND version = ?"
                f" AND structure_hash IN ({','.join('?' * len(chunk))})",
                [describer, ANALYSIS_VERSION, *chunk],
            )
            found.update({h: StructureAnalysis.from_dict(json.loads(a)) for h, a in rows})
        return found

    def put(self, structure_hash: str, describer: str, analysis: StructureAnalysis) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?)",
            (structure_hash, describer, ANALYSIS_VERSION, json.dumps(analysis.to_dict())),
        )
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AnalysisCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
