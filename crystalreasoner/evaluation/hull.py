"""Energy above the convex hull against an offline reference (SPEC §5-§6, STACK.md recipe).

The bundled reference is 85k MP compounds (one ground state per composition) with legacy
(pre-2020) corrections; MP-20 labels and CHGNet energies are on the MP2020 scale. Each reference
compound is converted from its composition alone:

    Δ/atom = [C2020(comp) - C_legacy(comp) - Σ n_i (μ2020_i - μ_legacy_i)] / N

with C2020 / C_legacy the MP2020 / legacy anion + U corrections and μ the elemental references
(μ_legacy = μ2020 except the legacy fitted N2, F2, Cl2, H2 energies). This is an approximation
of the Materials Project hull; users with the full Matbench-Discovery or MatterGen reference
get protocol-exact numbers through :class:`EntriesHullReference`. Negative values are kept;
sparse chemical systems are flagged.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
from dataclasses import dataclass
from functools import cache, cached_property
from itertools import combinations
from pathlib import Path

import pandas as pd
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition

from crystalreasoner.data.datasets import bundled_data_dir

#: legacy MP fitted elemental energies of the gases (eV/atom), MPCompatibility.yaml
LEGACY_GAS_MU = {"N": -7.95247218762, "F": -1.42055013381, "Cl": -1.25385097674, "H": -3.23973666138}
#: MP's U values (MPRelaxSet); +U runs only when O or F is the most electronegative element
MP_U_VALUES = {"Co": 3.32, "Cr": 3.7, "Fe": 5.3, "Mn": 3.9, "Mo": 4.38, "Ni": 6.2, "V": 3.25, "W": 6.2}
#: a chemical system with fewer reference compounds than this is flagged as sparse
SPARSE_BELOW = 2


@dataclass(frozen=True)
class HullResult:
    """E_hull of one composition and energy; ``e_above_hull`` is None when it failed."""

    e_above_hull: float | None  # eV/atom, negative values kept
    e_form_per_atom: float | None  # eV/atom, MP2020 scale
    n_reference: int = 0  # reference compounds (not elements) in the chemical system
    sparse: bool = False
    error: str | None = None


@cache
def elemental_references() -> dict[str, float]:
    """MP2020-compatible elemental reference energies μ_i (eV/atom), bundled."""
    path = bundled_data_dir() / "hull_reference" / "2023-02-07-mp-elemental-reference-entries.json.gz"
    with gzip.open(path, "rt") as handle:
        entries = json.load(handle)
    return {el: d["energy"] / sum(d["composition"].values()) for el, d in entries.items()}


def formation_energy_per_atom(composition: Composition, energy: float) -> float:
    """``(E - Σ n_i μ_i) / N`` with the bundled MP2020 elemental references (eV/atom)."""
    mu = elemental_references()
    counts = composition.element_composition
    return (energy - sum(n * mu[el.symbol] for el, n in counts.items())) / counts.num_atoms


def _entry_parameters(composition: Composition) -> dict:
    symbols = [el.symbol for el in composition.elements]
    anion = max(composition.elements, key=lambda el: el.X).symbol
    plus_u = anion in ("O", "F") and any(s in MP_U_VALUES for s in symbols)
    hubbards = {s: MP_U_VALUES.get(s, 0.0) for s in symbols} if plus_u else {}
    return {"run_type": "GGA+U" if plus_u else "GGA", "hubbards": hubbards, "is_hubbard": plus_u}


@cache
def _corrections():
    from pymatgen.analysis.compatibility import MODULE_DIR
    from pymatgen.entries.compatibility import (
        AnionCorrection,
        CorrectionsList,
        MaterialsProject2020Compatibility,
        UCorrection,
    )
    from pymatgen.io.vasp.sets import MPRelaxSet

    legacy_file = f"{MODULE_DIR}/MPCompatibility.yaml"
    legacy = CorrectionsList(
        [AnionCorrection(legacy_file, correct_peroxide=True), UCorrection(legacy_file, MPRelaxSet, "Advanced")]
    )
    return MaterialsProject2020Compatibility(check_potcar=False), legacy


def legacy_to_mp2020_shift(composition: Composition) -> float:
    """Δ per atom that moves a legacy-corrected formation energy onto the MP2020 scale."""
    from pymatgen.entries.computed_entries import ComputedEntry

    mp2020, legacy = _corrections()
    entry = ComputedEntry(composition, 0.0, parameters=_entry_parameters(composition))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c2020 = sum(adj.value for adj in mp2020.get_adjustments(entry))
        c_legacy = sum(adj.value for adj in legacy.get_adjustments(entry))
    mu = elemental_references()
    mu_shift = sum(
        n * (mu[el.symbol] - LEGACY_GAS_MU.get(el.symbol, mu[el.symbol]))
        for el, n in composition.element_composition.items()
    )
    return (c2020 - c_legacy - mu_shift) / composition.num_atoms


class HullReference:
    """Phase diagrams per chemical system, built once and cached; subclasses supply entries."""

    def entries_for(self, elements: frozenset[str]) -> list[PDEntry]:
        """Reference compounds (formation energies, MP2020 scale) whose elements ⊆ ``elements``."""
        raise NotImplementedError

    @cache  # noqa: B019 - one diagram per chemical system for the reference's lifetime
    def phase_diagram(self, elements: frozenset[str]) -> tuple[PhaseDiagram, int]:
        compounds = self.entries_for(elements)
        terminal = [PDEntry(Composition(el), 0.0) for el in sorted(elements)]
        return PhaseDiagram(terminal + compounds), len(compounds)

    def e_above_hull(self, composition: Composition, e_form_per_atom: float) -> HullResult:
        """E_hull of a composition at a formation energy (eV/atom, MP2020 scale)."""
        try:
            elements = frozenset(el.symbol for el in composition.elements)
            diagram, n_reference = self.phase_diagram(elements)
            entry = PDEntry(composition, e_form_per_atom * composition.num_atoms)
            value = diagram.get_e_above_hull(entry, allow_negative=True)
        except Exception as exc:  # unknown element, degenerate system: recorded, not raised
            return HullResult(None, e_form_per_atom, error=f"{type(exc).__name__}: {exc}")
        return HullResult(float(value), e_form_per_atom, n_reference, n_reference < SPARSE_BELOW)

    def e_above_hull_from_energy(self, composition: Composition, energy: float) -> HullResult:
        """E_hull from a total energy (eV) on the MP2020 scale, e.g. CHGNet's as it is."""
        return self.e_above_hull(composition, formation_energy_per_atom(composition, energy))


_SYMBOLS = re.compile(r"[A-Z][a-z]?")


@cache
def _converted_entry(formula: str, legacy_e_form: float) -> PDEntry:
    """A reference compound on the MP2020 scale; shared by every chemical system containing it."""
    composition = Composition(formula)
    shifted = legacy_e_form + legacy_to_mp2020_shift(composition)
    return PDEntry(composition, shifted * composition.num_atoms)


class BundledMPReference(HullReference):
    """The bundled 85k-compound MP reference, converted to MP2020 lazily per chemical system."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path or bundled_data_dir() / "hull_reference" / "mp_critexam_ef_ed.csv.gz")

    @cached_property
    def _by_elements(self) -> dict[frozenset[str], list[tuple[str, float]]]:
        table = pd.read_csv(self.path, usecols=["formula", "e_form_per_atom"])
        index: dict[frozenset[str], list[tuple[str, float]]] = {}
        for formula, e_form in zip(table["formula"], table["e_form_per_atom"]):
            index.setdefault(frozenset(_SYMBOLS.findall(formula)), []).append((formula, float(e_form)))
        return index

    def entries_for(self, elements: frozenset[str]) -> list[PDEntry]:
        entries = []
        for size in range(2, len(elements) + 1):
            for subset in combinations(sorted(elements), size):
                entries += [
                    _converted_entry(formula, e_form)
                    for formula, e_form in self._by_elements.get(frozenset(subset), [])
                ]
        return entries


class EntriesHullReference(HullReference):
    """A user's reference: a JSON(.gz) list of pymatgen ``ComputedEntry`` dicts (MP2020 energies).

    E.g. Matbench Discovery's ``mp-computed-structure-entries`` or MatterGen's reference, for
    protocol-exact numbers. Loaded as JSON, never unpickled.
    """

    def __init__(self, path: str | Path):
        from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rt") as handle:
            raw = json.load(handle)
        raw = raw.get("entries", raw) if isinstance(raw, dict) else raw
        self.entries = [
            (ComputedStructureEntry if "structure" in d else ComputedEntry).from_dict(d) for d in raw
        ]

    def entries_for(self, elements: frozenset[str]) -> list[PDEntry]:
        out = []
        for entry in self.entries:
            symbols = {el.symbol for el in entry.composition.elements}
            if symbols <= elements and len(symbols) > 1:
                e_form = formation_energy_per_atom(entry.composition, entry.energy)
                out.append(PDEntry(entry.composition, e_form * entry.composition.num_atoms))
        return out

