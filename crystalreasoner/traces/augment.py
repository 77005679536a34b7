"""Equivalent rewritings of a structure for the structure block (same crystal, other text).

Each augmentation keeps the crystal (and so every claim of the trace) unchanged, which lets a
small model see several spellings of one answer.
"""

from __future__ import annotations

import random

import numpy as np
from pymatgen.core import Structure

from crystalreasoner.config import StageConfig

#: right-handed relabellings of the cell axes (cyclic permutations, and swaps with one sign flip)
_AXIS_RELABELLINGS = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    ((0, 0, 1), (0, -1, 0), (1, 0, 0)),
)


class AugmentConfig(StageConfig):
    """Which rewritings to apply to the structure block (all off: the cell as given)."""

    cell: str = "as_given"  # "as_given" or "niggli"
    shuffle_atoms: bool = False
    shift_origin: bool = False
    relabel_axes: bool = False


def augment_structure(structure: Structure, config: AugmentConfig, rng: random.Random) -> Structure:
    """Return a rewritten copy of ``structure``; the input is not modified."""
    out = structure.copy()
    if config.cell == "niggli":
        out = out.get_reduced_structure("niggli")
    if config.relabel_axes:
        out.make_supercell(rng.choice(_AXIS_RELABELLINGS))  # unimodular: same cell volume
    if config.shift_origin:
        shift = np.array([rng.random() for _ in range(3)])
        out = Structure(out.lattice, out.species, (out.frac_coords + shift) % 1.0)
    if config.shuffle_atoms:
        order = list(range(len(out)))
        rng.shuffle(order)
        out = Structure(out.lattice, [out.species[i] for i in order], out.frac_coords[order])
    else:  # group atoms by element in electronegativity order, as the trace lists them
        out = out.get_sorted_structure(key=lambda site: site.specie.X)
    return out
