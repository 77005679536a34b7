"""Every bundled structure must survive encode -> decode (about 5,000 structures).

StructureMatcher (default tolerances) is the requirement; at ~6 ms a structure it dominates
the run time, so it runs in two worker processes after a cheap exact check of species, lattice
parameters and coordinates to the written precision.
"""

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from crystalreasoner.data import CodecConfig, decode_structure, encode_structure


def _unmatched(pairs):
    matcher = StructureMatcher()
    return [material_id for material_id, a, b in pairs if not matcher.fit(a, b)]


def _unmatched_ids(pairs) -> list[str]:
    workers = min(2, os.cpu_count() or 1)
    if workers == 1:
        return _unmatched(pairs)
    chunks = [pairs[i::8] for i in range(8)]  # interleaved, so big cells spread evenly
    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
        return sorted(m for part in pool.map(_unmatched, chunks) for m in part)


@pytest.mark.parametrize(
    "config", [CodecConfig(), CodecConfig(coord_decimals=4)], ids=["paper", "coord4"]
)
def test_every_bundled_structure_round_trips(every_bundled_record, config):
    assert len(every_bundled_record) == 1112 + 3953
    coord_tol = 0.5 * 10.0**-config.coord_decimals + 1e-9
    lattice_tol = 0.5 * 10.0**-config.lattice_decimals + 1e-9
    pairs = []
    for record in every_bundled_record:
        original = record.structure
        decoded = decode_structure(encode_structure(original, config))
        assert len(decoded) == len(original), record.material_id
        assert decoded.species == original.species, record.material_id
        parameters = (decoded.lattice.parameters, original.lattice.parameters)
        assert np.allclose(*parameters, rtol=0, atol=lattice_tol), record.material_id
        delta = decoded.frac_coords - original.frac_coords
        assert np.abs(delta - np.round(delta)).max() <= coord_tol, record.material_id
        pairs.append((record.material_id, original, decoded))
    assert _unmatched_ids(pairs) == []
