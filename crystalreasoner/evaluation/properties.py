"""Specialist properties from the MLIP (SPEC §5), computed with matcalc, failures recorded.

- Elasticity: relax, strain, fit the elastic tensor, Voigt-Reuss-Hill bulk and shear moduli (GPa).
- Thermal expansion: phonopy quasi-harmonic phonons over ~7 volumes within ±8 %, 3x3x3
  supercells, the volumetric CTE at 300 K (1/K). Expensive, so only for cells under
  ``THERMAL_MAX_ATOMS`` atoms; callers pick the lowest-energy samples of a batch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from pymatgen.core import Structure

from crystalreasoner.evaluation.mlip import MLIPConfig, calculator_for, single_threaded_blas
from crystalreasoner.tasks import (
    BULK_MODULUS,
    SHEAR_MODULUS,
    THERMAL_EXPANSION,
    THERMAL_MAX_ATOMS,
    Buckets,
)

#: SPEC §5: ~7 volumes within ±8 %
QHA_SCALE_FACTORS = tuple(float(x) for x in np.linspace(0.92, 1.08, 7) ** (1 / 3))
TEMPERATURE_K = 300.0


@dataclass
class PropertyResult:
    """Property values in the units the buckets use for storage; ``error`` when it failed."""

    values: dict[str, float]
    error: str | None = None


@single_threaded_blas
def elastic_moduli(structure: Structure, mlip: MLIPConfig) -> PropertyResult:
    """``bulk_modulus_vrh`` and ``shear_modulus_vrh`` in GPa from the MLIP elastic tensor."""
    from matcalc import ElasticityCalc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = ElasticityCalc(
                calculator_for(mlip), units_GPa=True, fmax=mlip.fmax,
                relax_calc_kwargs={"max_steps": mlip.max_steps},
            )
            out = calc.calc(structure)
        values = {"bulk_modulus_vrh": float(out["bulk_modulus_vrh"]), "shear_modulus_vrh": float(out["shear_modulus_vrh"])}
        if not all(math.isfinite(v) for v in values.values()):
            raise ValueError(f"non-finite moduli {values}")
        return PropertyResult(values)
    except Exception as exc:  # recorded on the sample; the batch goes on
        return PropertyResult({}, f"{type(exc).__name__}: {exc}")


@single_threaded_blas
def thermal_expansion(structure: Structure, mlip: MLIPConfig) -> PropertyResult:
    """``thermal_expansion_300k``: volumetric CTE (1/K) at 300 K from MLIP QHA phonons."""
    if len(structure) >= THERMAL_MAX_ATOMS:
        return PropertyResult({}, f"{len(structure)} atoms: QHA only below {THERMAL_MAX_ATOMS}")
    from matcalc import QHACalc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = QHACalc(
                calculator_for(mlip), t_min=0, t_max=TEMPERATURE_K + 50, t_step=10,
                scale_factors=QHA_SCALE_FACTORS, fmax=mlip.fmax, max_steps=mlip.max_steps,
                phonon_calc_kwargs={"supercell_matrix": ((3, 0, 0), (0, 3, 0), (0, 0, 3))},
                store_ha_phonon=False,
            )
            out = calc.calc(structure)
        temperatures = list(out["temperatures"])
        cte = float(out["thermal_expansion_coefficients"][temperatures.index(TEMPERATURE_K)])
        if not math.isfinite(cte):
            raise ValueError("non-finite thermal expansion")
        return PropertyResult({"thermal_expansion_300k": cte})
    except Exception as exc:
        return PropertyResult({}, f"{type(exc).__name__}: {exc}")


def bucket_fit(buckets: Buckets, target_bucket: int, value: float) -> float:
    """SPEC §5 shaped score of a value against its target bucket: f = 1 - 2((x - centre)/width)^2
    when f >= 0 (0.5 at the edges, 1 at the centre), else e^f - 1 (towards -1 far away).

    The open last bucket is scored as a bucket as wide as the one before it, with everything
    above its centre scoring 1.
    """
    low, high = buckets.bounds(target_bucket)
    shown = value * buckets.scale
    if math.isinf(high):
        high = low + (low - buckets.edges[-2] if len(buckets.edges) > 1 else max(abs(low), 1.0))
        shown = min(shown, (low + high) / 2)
    centre, width = (low + high) / 2, high - low
    f = 1 - 2 * ((shown - centre) / width) ** 2
    return f if f >= 0 else math.exp(f) - 1


def bucket_hit(buckets: Buckets, target_bucket: int, value: float | None) -> int:
    """1 when ``value`` (stored units) falls in the target bucket."""
    return int(value is not None and buckets.index(value) == target_bucket)


SPECIALIST_BUCKETS = {
    "bulk_modulus_vrh": BULK_MODULUS,
    "shear_modulus_vrh": SHEAR_MODULUS,
    "thermal_expansion_300k": THERMAL_EXPANSION,
}
