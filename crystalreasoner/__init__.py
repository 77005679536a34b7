"""CrystalReasoner: reasoning-first crystal structure generation.

The library is importable and testable without Prefect; ``flows/`` holds the orchestration.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crystalreasoner")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
