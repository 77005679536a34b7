"""E_hull against the bundled reference reproduces the MP-20 labels (STACK.md recipe)."""

import numpy as np
import pytest
from pymatgen.core import Composition

from crystalreasoner.data import load_dataset
from crystalreasoner.evaluation.hull import BundledMPReference, legacy_to_mp2020_shift


def test_dft_formation_energies_reproduce_the_dataset_e_above_hull():
    bundle = load_dataset("mp20-mini")
    records = bundle.records("test") + bundle.records("val")
    reference = BundledMPReference()
    results = [
        reference.e_above_hull(r.structure.composition, r.properties["formation_energy_per_atom"])
        for r in records
    ]
    assert all(res.e_above_hull is not None for res in results)
    errors = [abs(res.e_above_hull - r.properties["e_above_hull"]) for res, r in zip(results, records)]
    assert len(errors) == 265
    assert np.mean(errors) <= 0.01


def test_conversion_matches_the_correction_tables():
    # Fe2O3: MP2020 (-0.687 O, -2.256 Fe+U) minus legacy (-0.70229 O, -2.733 Fe+U), per atom
    expected = ((-0.687 * 3 - 2.256 * 2) - (-0.70229 * 3 - 2.733 * 2)) / 5
    assert legacy_to_mp2020_shift(Composition("Fe2O3")) == pytest.approx(expected, abs=2e-3)
    assert legacy_to_mp2020_shift(Composition("Cu")) == pytest.approx(0.0)

