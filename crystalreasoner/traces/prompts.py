"""Natural-language requests for the four tasks (SPEC §3), with seeded variety of phrasing."""

from __future__ import annotations

import random
import re

from pymatgen.core import Composition, Element

from crystalreasoner.tasks import (
    BULK_MODULUS,
    SHEAR_MODULUS,
    THERMAL_EXPANSION,
    THERMAL_MAX_ATOMS,
    Task,
)

OPENINGS = (
    "Generate a crystal structure of {formula}{details}.",
    "Propose a crystal structure for the material {formula}{details}.",
    "Design a crystal with the formula {formula}{details}.",
    "I am looking for a material with composition {formula}{details}. Write its crystal structure.",
    "Write the crystal structure of a {formula} compound{details}.",
)

#: property -> phrase templates for the conditional task (SPEC §3: a random subset of 0-4)
CONDITIONAL_ATTRIBUTES = {
    "formation_energy_per_atom": (
        "formation energy {value:.3f} eV/atom",
        "a formation energy of {value:.3f} eV/atom",
    ),
    "band_gap": ("band gap {value:.2f} eV", "a band gap of about {value:.2f} eV"),
    "e_above_hull": (
        "energy above hull {value:.3f} eV/atom",
        "an energy above the convex hull of {value:.3f} eV/atom",
    ),
    "spacegroup_number": ("space group {value:d}", "space-group number {value:d}"),
}


def formula_text(composition: Composition) -> str:
    """Flat reduced formula in electronegativity order, e.g. 'LuSi2Pd2' (not MP's 'Lu(SiPd)2')."""
    reduced = composition.reduced_composition
    return "".join(
        f"{el.symbol}{int(n) if n != 1 else ''}"
        for el, n in sorted(reduced.items(), key=lambda item: (item[0].X, item[0].symbol))
    )


def element_counts(composition: dict[str, int], elements: list[str]) -> str:
    """Explicit cell counts, e.g. 'Tm1 Mg1 Hg2': they tell a small model exactly what to write."""
    return " ".join(f"{el}{composition[el]}" for el in elements)


_CELL_COUNTS = re.compile(r"The cell contains ((?:[A-Z][a-z]?\d+ ?)+)\.")
_FORMULA_WORD = re.compile(r"\b(?:\(?[A-Z][a-z]?\d*\)?\d*){1,12}\b")


def parse_cell_counts(prompt: str) -> dict[str, int] | None:
    """The explicit counts a prompt states ('The cell contains Mg2 In4.'), if any."""
    match = _CELL_COUNTS.search(prompt)
    if not match:
        return None
    return {el: int(n) for el, n in re.findall(r"([A-Z][a-z]?)(\d+)", match.group(1))}


def formula_from_prompt(prompt: str) -> str | None:
    """The first word of a free-text request that is a chemical formula ('BaTiO3 in ...')."""
    for word in _FORMULA_WORD.findall(prompt):
        if word == "I":  # the pronoun, not iodine
            continue
        try:
            composition = Composition(word)
        except (ValueError, KeyError):
            continue
        symbols = [getattr(el, "symbol", "") for el in composition.elements]
        if symbols and all(Element.is_valid_symbol(sym) and sym in word for sym in symbols):
            return formula_text(composition)
    return None


def _join(phrases: list[str]) -> str:
    if not phrases:
        return ""
    if len(phrases) == 1:
        return " with " + phrases[0]
    return " with " + ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _task_phrases(task: Task, properties: dict, rng: random.Random) -> list[str]:
    if task is Task.CONDITIONAL:
        known = [key for key in CONDITIONAL_ATTRIBUTES if properties.get(key) is not None]
        chosen = rng.sample(known, rng.randint(0, len(known)))
        return [
            rng.choice(CONDITIONAL_ATTRIBUTES[key]).format(value=properties[key]) for key in chosen
        ]
    if task is Task.SPACE_GROUP:
        return [f"space group {properties['spacegroup_number']}"]
    if task is Task.ELASTICITY:
        return [
            f"{buckets.name} {buckets.describe(buckets.index(properties[key]))}"
            for buckets, key in ((BULK_MODULUS, "bulk_modulus_vrh"), (SHEAR_MODULUS, "shear_modulus_vrh"))
        ]
    bucket = THERMAL_EXPANSION.index(properties["thermal_expansion_300k"])
    return [
        f"{THERMAL_EXPANSION.name} {THERMAL_EXPANSION.describe(bucket)}",
        f"fewer than {THERMAL_MAX_ATOMS} atoms in the cell",
    ]


def task_applies(task: Task, properties: dict, n_atoms: int) -> bool:
    """Whether a material has what the task's prompt needs (e.g. moduli inside the buckets)."""
    if task is Task.CONDITIONAL:
        return True
    if task is Task.SPACE_GROUP:
        return properties.get("spacegroup_number") is not None
    if task is Task.ELASTICITY:
        return all(
            properties.get(key) is not None and buckets.index(properties[key]) is not None
            for buckets, key in ((BULK_MODULUS, "bulk_modulus_vrh"), (SHEAR_MODULUS, "shear_modulus_vrh"))
        )
    cte = properties.get("thermal_expansion_300k")
    return cte is not None and THERMAL_EXPANSION.index(cte) is not None and n_atoms < THERMAL_MAX_ATOMS


def render_prompt(
    task: Task,
    formula: str,
    properties: dict,
    rng: random.Random,
    *,
    counts: str | None = None,
) -> str:
    """One user request; ``counts`` (e.g. 'Tm1 Mg1 Hg2') is stated when given."""
    phrases = _task_phrases(task, properties, rng)
    text = rng.choice(OPENINGS).format(formula=formula, details=_join(phrases))
    if counts:
        text += f" The cell contains {counts}."
    return text
