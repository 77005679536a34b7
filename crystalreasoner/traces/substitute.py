"""Hypothetical training crystals by data-mined ionic substitution (Hautier et al. 2011).

A small model trained on a few hundred compositions memorises formula -> structure instead of
learning to copy the requested formula (measured: composition match under 2 %). Substituted
crystals multiply the distinct compositions it sees, so copying becomes the only way to lower the
loss. They are *hypothetical*: the substitution keeps the prototype and each oxidation state
(so charge balance holds), the cell is rescaled by the ionic volumes, and no property is claimed
for them. They enter the training split only, and never take a formula of the held-out splits.
"""

from __future__ import annotations

import random
import warnings
from functools import lru_cache

from pymatgen.analysis.bond_valence import BVAnalyzer
from pymatgen.analysis.structure_prediction.substitution_probability import SubstitutionPredictor
from pymatgen.core import Species, Structure

from crystalreasoner.config import StageConfig
from crystalreasoner.data import CrystalRecord

SOURCE_PREFIX = "substitution of "


def is_substitute(record: CrystalRecord) -> bool:
    """Whether ``record`` is a hypothetical crystal made by :func:`substitution_records`."""
    return record.source.startswith(SOURCE_PREFIX)


class SubstitutionConfig(StageConfig):
    """How many substituted crystals to derive from each training crystal."""

    per_structure: int = 0  # 0: off
    threshold: float = 1e-3  # SubstitutionPredictor probability threshold
    max_predictions: int = 200  # candidates considered per structure (the most probable first)


@lru_cache(maxsize=4)
def _predictor(threshold: float) -> SubstitutionPredictor:
    return SubstitutionPredictor(threshold=threshold)


def _radius(species: Species) -> float:
    """Ionic radius where tabulated (pymatgen warns on every fallback)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        radius = species.ionic_radius or species.average_ionic_radius or species.atomic_radius
    return float(radius or 1.0)


def substituted_structures(
    structure: Structure, config: SubstitutionConfig, rng: random.Random
) -> list[Structure]:
    """Up to ``config.per_structure`` charge-preserving substitutions of ``structure``.

    Empty when no charge-balanced oxidation states are found (intermetallics) or the
    substitution model does not know a species.
    """
    if config.per_structure <= 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decorated = BVAnalyzer().get_oxi_state_decorated_structure(structure)
            species = [str(sp) for sp in decorated.composition.elements]
            predictions = _predictor(config.threshold).list_prediction(species)
        except ValueError:
            return []
    options = []
    def order(prediction: dict) -> tuple:  # ties broken by the mapping: stable across processes
        return -prediction["probability"], sorted(map(str, prediction["substitutions"].items()))

    for prediction in sorted(predictions, key=order)[: config.max_predictions]:
        mapping = {
            Species.from_str(str(old)): new for new, old in prediction["substitutions"].items()
        }
        if all(old == new for old, new in mapping.items()):
            continue
        if any(new.oxi_state != old.oxi_state for old, new in mapping.items()):
            continue  # a valence change breaks charge balance
        if len({new.symbol for new in mapping.values()}) < len(mapping):
            continue  # two sites merged into one element: another compound type
        options.append(mapping)
    rng.shuffle(options)
    out = []
    old_volume = sum(_radius(site.specie) ** 3 for site in decorated)
    for mapping in options[: config.per_structure]:
        new = decorated.copy()
        new.replace_species(mapping)
        new.scale_lattice(new.volume * sum(_radius(site.specie) ** 3 for site in new) / old_volume)
        new.remove_oxidation_states()
        out.append(new)
    return out


def substitution_records(
    records: list[CrystalRecord],
    config: SubstitutionConfig,
    seed: int,
    excluded_formulas: set[str],
) -> list[CrystalRecord]:
    """Hypothetical training records derived from ``records`` (ids ``<parent>~sub<i>``).

    Compositions in ``excluded_formulas`` (reduced formulas of the held-out splits) and repeats are
    dropped, so no held-out formula and no composition twice.
    """
    seen = set(excluded_formulas) | {r.formula for r in records}
    out = []
    for record in records:
        rng = random.Random(f"{seed}:substitute:{record.material_id}")
        for index, structure in enumerate(substituted_structures(record.structure, config, rng)):
            formula = structure.composition.reduced_formula
            if formula in seen:
                continue
            seen.add(formula)
            out.append(
                CrystalRecord(
                    material_id=f"{record.material_id}~sub{index}",
                    structure=structure,
                    split=record.split,
                    source=SOURCE_PREFIX + record.material_id,
                )
            )
    return out
