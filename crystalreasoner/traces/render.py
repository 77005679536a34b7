"""The text of a thinking trace (SPEC §3), and the parser that reads its claims back.

Rendering and parsing live side by side so the format has one definition: the trace-consistency
reward and the evaluation read traces with :func:`parse_trace_claims`.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field

from crystalreasoner.traces.analysis import StructureAnalysis

THINK_START, THINK_END = "<think>", "</think>"
METAL_GAP_EV = 0.0  # band gap at or below which a material is called a metal
INSULATOR_GAP_EV = 3.0  # SPEC §3: insulator vs semiconductor at 3 eV
ON_HULL_EV = 1e-6  # E_hull below which a material is "on the convex hull"


def _signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def _counts_text(cell_counts: dict[str, int]) -> str:
    """``Ca2 V1 W1 O6``: the counts as the composition lines write them."""
    return " ".join(f"{el}{n}" for el, n in cell_counts.items())


def _cell_counts(analysis: StructureAnalysis) -> dict[str, int]:
    """The cell's element counts in electronegativity order (the block's order)."""
    return {el: analysis.composition[el] for el in analysis.elements}


def composition_lines(cell_counts: dict[str, int]) -> tuple[str, str]:
    """The trace's ``Cell composition:`` and ``Elements by electronegativity:`` lines for cell
    counts given in electronegativity order (constrained decoding forces these same lines)."""
    return (
        f"Cell composition: {_counts_text(cell_counts)} ({sum(cell_counts.values())} atoms).",
        f"Elements by electronegativity: {', '.join(cell_counts)}.",
    )


def sites_to_write_line(cell_counts: dict[str, int]) -> str:
    """The trace's last line (``TraceConfig.restate_composition``): the cell counts again, in
    block order, next to the atom lines, so the element that comes next is a short look back
    (tiny-cpu-restated: composition match 41.1 %, from 22.6 %; README, "Restated composition")."""
    return f"Sites to write: {_counts_text(cell_counts)}."


def orbit_line(element: str, multiplicities: list[int], wyckoff: list[str] | None = None) -> str:
    """The trace's line for one element's symmetry orbits (optionally with Wyckoff letters)."""
    noun = "orbit, multiplicity" if len(multiplicities) == 1 else "orbits, multiplicities"
    text = f"{element}: {len(multiplicities)} {noun} {', '.join(map(str, multiplicities))}"
    if wyckoff is not None:
        text += f" (Wyckoff {', '.join(wyckoff)})"
    return text + "."


def _symmetry_lines(analysis: StructureAnalysis, print_wyckoff: bool) -> list[str]:
    lines = [
        f"Space group: {analysis.spacegroup_symbol} (No. {analysis.spacegroup_number}), "
        f"{analysis.crystal_system} crystal system.",
    ]
    if print_wyckoff:
        a, b, c, alpha, beta, gamma = analysis.conventional_lattice
        lines.append(
            f"Conventional cell: a={a:.3f} b={b:.3f} c={c:.3f} Å, "
            f"alpha={alpha:.2f} beta={beta:.2f} gamma={gamma:.2f} degrees."
        )
    lines.extend(composition_lines(_cell_counts(analysis)))
    for el in analysis.elements:
        lines.append(orbit_line(el, analysis.orbits[el], analysis.wyckoff[el] if print_wyckoff else None))
    if analysis.oxidation_states:
        counts: Counter[tuple[str, int]] = Counter()
        for el in analysis.elements:
            for mult, valence in zip(analysis.orbits[el], analysis.oxidation_states[el]):
                counts[(el, valence)] += mult
        states = ", ".join(f"{el}{_signed(v)}" for el, v in counts)
        terms = " + ".join(f"{n}x({_signed(v)})" for (_, v), n in counts.items())
        total = sum(n * v for (_, v), n in counts.items())
        lines.append(f"Oxidation states: {states}; charge balance: {terms} = {total}.")
    return lines


def _coordination_lines(analysis: StructureAnalysis, describer: str) -> list[str]:
    if describer == "none":
        return []
    if describer == "robocrys":
        return [f"Coordination: {analysis.robocrys_text}"]
    order = {el: i for i, el in enumerate(analysis.elements)}
    envs = sorted(analysis.site_environments, key=lambda e: (order[e.element], e.label))
    return ["Coordination:"] + [env.sentence() for env in envs]


def _property_sections(properties: dict, decimals: int) -> list[str]:
    sections = []
    gap = properties.get("band_gap")
    if gap is not None:
        if gap <= METAL_GAP_EV:
            sections.append("Electronic: metallic (no band gap).")
        else:
            kind = "insulator" if gap >= INSULATOR_GAP_EV else "semiconductor"
            sections.append(f"Electronic: {kind}, band gap {gap:.{decimals}f} eV.")
    e_hull = properties.get("e_above_hull")
    e_form = properties.get("formation_energy_per_atom")
    stability = []
    if e_hull is not None:
        stability.append(
            "on the convex hull" if e_hull <= ON_HULL_EV
            else f"energy above hull {e_hull:.{decimals}f} eV/atom"
        )
    if e_form is not None:
        stability.append(f"formation energy {e_form:.{decimals}f} eV/atom")
    if stability:
        sections.append("Stability: " + "; ".join(stability) + ".")
    moduli = [
        f"{name} modulus {properties[key]:.0f} GPa"
        for name, key in (("bulk", "bulk_modulus_vrh"), ("shear", "shear_modulus_vrh"))
        if properties.get(key) is not None
    ]
    if moduli:
        sections.append("Mechanical: " + ", ".join(moduli) + ".")
    cte = properties.get("thermal_expansion_300k")
    if cte is not None:
        sections.append(f"Thermal: volumetric thermal expansion {cte * 1e6:.1f}x10^-6/K at 300 K.")
    return sections


def render_thinking(
    analysis: StructureAnalysis,
    properties: dict,
    rng: random.Random,
    *,
    describer: str = "crystalnn",
    print_wyckoff: bool = False,
    property_decimals: int = 3,
    restate_composition: bool = False,
) -> str:
    """The trace from abstract to concrete: symmetry, coordination, volume, properties (and,
    with ``restate_composition``, the cell counts again as the last line)."""
    lines = ["Symmetry:"] + _symmetry_lines(analysis, print_wyckoff)
    lines += _coordination_lines(analysis, describer)
    n_atoms = sum(analysis.composition.values())
    lines.append(
        f"Volume: {analysis.volume:.2f} Å^3 ({analysis.volume / n_atoms:.2f} Å^3/atom); "
        f"shortest interatomic distance {analysis.min_distance:.2f} Å, above 0.5 Å."
    )
    sections = _property_sections(properties, property_decimals)
    rng.shuffle(sections)  # SPEC §3: property sections in seeded random order
    if sections:
        lines.append("Properties:")
        lines += sections
    if restate_composition:
        lines.append(sites_to_write_line(_cell_counts(analysis)))
    return "\n".join([THINK_START, *lines, THINK_END])


@dataclass
class TraceClaims:
    """What a (possibly generated) trace announces; fields are None when it says nothing."""

    spacegroup_number: int | None = None
    composition: dict[str, int] | None = None
    orbits: dict[str, list[int]] = field(default_factory=dict)
    coordination_numbers: dict[str, list[int]] = field(default_factory=dict)
    volume: float | None = None


_SPACE_GROUP = re.compile(r"^Space group: .*\(No\. (\d+)\)", re.MULTILINE)
_COMPOSITION = re.compile(r"^Cell composition: ((?:[A-Z][a-z]?\d+ ?)+)", re.MULTILINE)
_ORBITS = re.compile(r"^([A-Z][a-z]?): (\d+) orbits?, multiplicit(?:y|ies) ([\d, ]+)", re.MULTILINE)
_VOLUME = re.compile(r"^Volume: (\d+(?:\.\d+)?) Å\^3", re.MULTILINE)
_SITE = re.compile(r"^([A-Z][a-z]?)\(\d+\): (\d+)-coordinate", re.MULTILINE)


def parse_trace_claims(text: str) -> TraceClaims:
    """Read the claims of a trace back; never raises (generated text may be anything)."""
    claims = TraceClaims()
    if match := _SPACE_GROUP.search(text):
        claims.spacegroup_number = int(match.group(1))
    if match := _COMPOSITION.search(text):
        claims.composition = {
            el: int(n) for el, n in re.findall(r"([A-Z][a-z]?)(\d+)", match.group(1))
        }
    for element, _, mults in _ORBITS.findall(text):
        claims.orbits[element] = [int(m) for m in re.findall(r"\d+", mults)]
    if match := _VOLUME.search(text):
        claims.volume = float(match.group(1))
    for element, cn in _SITE.findall(text):
        claims.coordination_numbers.setdefault(element, []).append(int(cn))
    return claims
