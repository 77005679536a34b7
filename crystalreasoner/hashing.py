"""Content hashes: the identity of structures, configs and files across the pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pymatgen.core import Structure


def sha256_json(obj: Any) -> str:
    """Hash a JSON-serialisable object independently of key order."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def structure_hash(structure: Structure, decimals: int = 6) -> str:
    """Hash a structure by its lattice and its sites, independent of site order.

    Coordinates are wrapped into [0, 1) and rounded, so the same cell written twice (or
    with atoms listed in another order) gets the same hash; a different cell setting of the
    same crystal does not, which is what a per-structure cache needs.
    """
    lattice = [[round(x, decimals) for x in row] for row in structure.lattice.matrix.tolist()]
    sites = sorted(
        (site.species_string, *(round(x % 1.0, decimals) % 1.0 for x in site.frac_coords))
        for site in structure
    )
    return sha256_json({"lattice": lattice, "sites": sites})


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Stream a file through sha256 (model checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
