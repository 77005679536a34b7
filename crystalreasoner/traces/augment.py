"""Equivalent rewritings of a structure for the structure block (same crystal, other text).

Each augmentation keeps the crystal (and so every claim of the trace) unchanged, which lets a
small model see several spellings of one answer.
"""

from __future__ import annotations

import random
from typing import Literal

import numpy as np
from pymatgen.core import Structure

from crystalreasoner.config import StageConfig
from crystalreasoner.data.codec import written_coord

#: right-handed relabellings of the cell axes (cyclic permutations, and swaps with one sign flip)
_AXIS_RELABELLINGS = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((0, 1, 0), (0, 0, 1), (1, 0, 0)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
    ((0, 1, 0), (1, 0, 0), (0, 0, -1)),
    ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    ((0, 0, 1), (0, -1, 0), (1, 0, 0)),
)


#: the order of the atom lines: ``element`` groups them by element in electronegativity order,
#: as the trace lists them (within an element, as given); ``element_then_coordinates`` sorts
#: each element's lines by their written (x, y, z); ``coordinates`` sorts all lines by it, each
#: line greater than the one before, and the elements interleave (README, "Atom lines in
#: coordinate order"); ``shuffled`` draws a random order
AtomOrder = Literal["element", "element_then_coordinates", "coordinates", "shuffled"]


class AugmentConfig(StageConfig):
    """Which rewritings to apply to the structure block (all off: the cell as given)."""

    cell: str = "as_given"  # "as_given" or "niggli"
    atom_order: AtomOrder = "element"
    #: True: a random origin; ``first_atom``: the origin on the atom written first, so the others
    #: are written as offsets from it (special positions stay 0, 1/2, 1/4 ...) and ``0 0 0`` is
    #: that line's alone (README, "Where the origin goes")
    shift_origin: bool | Literal["first_atom"] = False
    relabel_axes: bool = False


def augment_structure(
    structure: Structure, config: AugmentConfig, rng: random.Random, coord_decimals: int = 4
) -> Structure:
    """Return a rewritten copy of ``structure``; the input is not modified. ``coord_decimals`` is
    the block's, so that the ``coordinates`` order is the order of the written numbers."""
    out = structure.copy()
    if config.cell == "niggli":
        out = out.get_reduced_structure("niggli")
    if config.relabel_axes:
        out.make_supercell(rng.choice(_AXIS_RELABELLINGS))  # unimodular: same cell volume
    if config.shift_origin is True:
        shift = np.array([rng.random() for _ in range(3)])
        out = Structure(out.lattice, out.species, (out.frac_coords + shift) % 1.0)
    out = _ordered(out, config.atom_order, rng, coord_decimals)
    if config.shift_origin == "first_atom":  # the line written first moves to 0 0 0 and stays first
        out = Structure(out.lattice, out.species, (out.frac_coords - out.frac_coords[0]) % 1.0)
        if config.atom_order in ("coordinates", "element_then_coordinates"):
            out = _ordered(out, config.atom_order, rng, coord_decimals)  # the others' order moved
    return out


def _ordered(out: Structure, atom_order: AtomOrder, rng: random.Random, coord_decimals: int) -> Structure:
    """``out`` with its atom lines in ``atom_order`` (see ``AtomOrder``)."""
    if atom_order == "element":
        return out.get_sorted_structure(key=lambda site: site.specie.X)
    order = list(range(len(out)))

    def written(i: int) -> tuple[float, ...]:
        return tuple(written_coord(x, coord_decimals) for x in out[i].frac_coords)

    if atom_order == "shuffled":
        rng.shuffle(order)
    elif atom_order == "coordinates":
        order.sort(key=written)
    else:  # element_then_coordinates
        order.sort(key=lambda i: (out[i].specie.X, out[i].specie.Z, written(i)))
    return Structure(out.lattice, [out.species[i] for i in order], out.frac_coords[order])
