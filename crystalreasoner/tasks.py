"""The generation tasks and the property buckets of the specialist tasks (SPEC §3, §5).

Prompts (traces), rewards and the evaluation report all read bucket edges from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Task(StrEnum):
    """What a prompt asks for."""

    CONDITIONAL = "conditional"  # formula + a random subset of known properties
    SPACE_GROUP = "space_group"  # formula + target space-group number
    ELASTICITY = "elasticity"  # formula + bulk and shear modulus buckets
    THERMAL_EXPANSION = "thermal_expansion"  # formula + 300 K volumetric CTE bucket, < 10 atoms


@dataclass(frozen=True)
class Buckets:
    """Half-open intervals ``[edges[i], edges[i+1])``; the last bucket is open-ended.

    Parameters
    ----------
    name, unit:
        Used in prompts, e.g. "bulk modulus", "GPa".
    edges:
        Increasing bucket boundaries, in ``unit``.
    scale:
        Factor from the property's stored unit to ``unit`` (CTE is stored in 1/K, shown in 1e-6/K).
    """

    name: str
    unit: str
    edges: tuple[float, ...]
    scale: float = 1.0

    def index(self, value: float) -> int | None:
        """Bucket of a value in stored units, or None when below the first edge or not finite."""
        shown = value * self.scale
        if not math.isfinite(shown) or shown < self.edges[0]:
            return None
        for i, upper in enumerate(self.edges[1:]):
            if shown < upper:
                return i
        return len(self.edges) - 1

    def bounds(self, index: int) -> tuple[float, float]:
        """Lower and upper edge (upper is ``inf`` for the last bucket), in ``unit``."""
        upper = self.edges[index + 1] if index + 1 < len(self.edges) else math.inf
        return self.edges[index], upper

    def describe(self, index: int) -> str:
        """Human phrase for a bucket, e.g. 'between 50 and 150 GPa' or 'above 300 GPa'."""
        low, high = self.bounds(index)
        if math.isinf(high):
            return f"above {low:g} {self.unit}"
        return f"between {low:g} and {high:g} {self.unit}"


BULK_MODULUS = Buckets("bulk modulus", "GPa", (0, 10, 50, 150, 300))
SHEAR_MODULUS = Buckets("shear modulus", "GPa", (0, 20, 80, 200))
THERMAL_EXPANSION = Buckets(
    "volumetric thermal expansion at 300 K", "x10^-6/K", (-10, 0, 5, 15, 40, 100, 200, 300), 1e6
)
THERMAL_MAX_ATOMS = 10  # SPEC §5: phonon QHA only for cells with fewer than 10 atoms
