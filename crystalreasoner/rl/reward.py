"""The GRPO reward (SPEC §5), computed for a whole group at once with the evaluation's checks.

    R = gate * (0.1 parses + 0.3 structurally_valid + 0.3 smact_valid + 0.3 composition_match
                + 10 r(E_hull)  [+ ours: w * trace consistency]  [+ specialist property terms])

The 0/1 terms come from :func:`crystalreasoner.evaluation.stage.check_samples` (the report's own
checks, with the reward's 1 Å^3 volume floor), E_hull from the same relaxation and hull code.
Only samples that pass the gate, the structural check and SMACT are relaxed (batched work per
group). A sample whose reward cannot be computed scores 0 with the reason logged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import field_validator
from pymatgen.core import Structure

from crystalreasoner.config import StageConfig, load_config
from crystalreasoner.data.codec import STRUCTURE_END
from crystalreasoner.evaluation.checks import REWARD_MIN_VOLUME, is_structurally_valid
from crystalreasoner.evaluation.hull import HullReference
from crystalreasoner.evaluation.mlip import MLIPConfig, relax_many
from crystalreasoner.evaluation.properties import (
    SPECIALIST_BUCKETS,
    bucket_fit,
    bucket_hit,
    elastic_moduli,
    thermal_expansion,
)
from crystalreasoner.evaluation.stage import (
    EvaluateConfig,
    apply_relaxations,
    check_samples,
    hull_reference,
)
from crystalreasoner.generation.stage import GeneratedSample

Specialist = Literal["none", "space_group", "elasticity", "thermal_expansion"]
#: exact claims plus their graded forms (crystal system, composition overlap): a dense signal
TRACE_TERMS = ("trace_spacegroup", "trace_crystal_system", "trace_composition", "trace_composition_overlap",
               "trace_orbits", "trace_volume")


class RewardConfig(StageConfig):
    """Weights of the reward terms (SPEC §5 defaults) and the optional extras."""

    parse: float = 0.1
    structural: float = 0.3
    smact: float = 0.3
    composition: float = 0.3
    energy: float = 10.0  # x r(E_hull); specialists use 1
    trace_consistency: float = 0.0  # ours: x mean of the trace_claims the trace announced
    trace_claims: tuple[str, ...] = TRACE_TERMS  # which of TRACE_TERMS the term averages
    specialist: Specialist = "none"
    spacegroup: float = 1.0  # space-group specialist: + 1 x (matches the target)
    property: float = 5.0  # elasticity / thermal expansion: 5 x bucket score(s)
    thermal_top_k: int = 2  # QHA only for the lowest-energy samples of each prompt's group
    mlip: MLIPConfig | None = MLIPConfig(max_steps=20, timeout_s=30)  # None: no energy term
    #: the specialists' property MLIP when it should differ from ``mlip`` (e.g. SevenNet-0 for
    #: QHA: CHGNet 0.3 gives fcc Al a negative thermal expansion)
    property_mlip: MLIPConfig | None = None
    hull_reference: str = "bundled"

    @field_validator("trace_claims")
    @classmethod
    def _known_claims(cls, value):
        unknown = set(value) - set(TRACE_TERMS)
        if unknown:
            raise ValueError(f"unknown trace claims {sorted(unknown)}; known: {', '.join(TRACE_TERMS)}")
        return value

    @field_validator("mlip", "property_mlip", mode="before")
    @classmethod
    def _mlip_preset(cls, value):
        return load_config(MLIPConfig, value) if isinstance(value, str) else value


def energy_score(e_above_hull: float | None) -> float:
    """r(E) = 1 - 0.5 E for E <= 1 eV/atom, 0.5 / E above, 0 without an energy."""
    if e_above_hull is None:
        return 0.0
    return 1 - 0.5 * e_above_hull if e_above_hull <= 1 else 0.5 / e_above_hull


def gate(text: str) -> int:
    """1 when the answer closes its structure block and then ends (nothing after ``</CIF>``)."""
    return int(text.rstrip().endswith(STRUCTURE_END))


@dataclass
class RewardBreakdown:
    """One completion's reward and every term that went into it (logged per step)."""

    reward: float
    terms: dict[str, float] = field(default_factory=dict)
    e_above_hull: float | None = None
    errors: dict[str, str] = field(default_factory=dict)
    mlip_seconds: float = 0.0


def group_rewards(
    samples: Sequence[GeneratedSample], config: RewardConfig, hull: HullReference | None = None
) -> list[RewardBreakdown]:
    """Rewards of a group of completions (structures already parsed into the samples)."""
    rows = check_samples(samples, EvaluateConfig(novelty_dataset=None))
    structures = [Structure.from_dict(s.structure) if s.structure else None for s in samples]
    out = []
    for sample, row, structure in zip(samples, rows, structures):
        metrics = row.metrics
        terms = {
            "gate": gate(sample.text),
            "parsed": metrics["parsed"],
            "structurally_valid": int(
                structure is not None and is_structurally_valid(structure, REWARD_MIN_VOLUME)
            ),
            "smact_valid": metrics["smact_valid"],
            "composition_match": metrics["composition_match"],
        }
        if config.trace_consistency:
            claimed = [metrics[name] for name in config.trace_claims if name in metrics]
            terms["trace_consistency"] = sum(claimed) / len(claimed) if claimed else 0.0
        if config.specialist == "space_group":
            terms["spacegroup_match"] = metrics.get("spacegroup_match", 0)
        out.append(RewardBreakdown(0.0, terms, errors=dict(row.errors)))
    relaxed_ok = [
        i for i, b in enumerate(out)
        if b.terms["gate"] and b.terms["structurally_valid"] and b.terms["smact_valid"]
    ]
    if config.mlip is not None and relaxed_ok:
        results = relax_many([structures[i] for i in relaxed_ok], config.mlip)
        apply_relaxations(rows, dict(zip(relaxed_ok, results)), hull or hull_reference(config.hull_reference))
        for i, result in zip(relaxed_ok, results):
            out[i].mlip_seconds = result.seconds
            out[i].e_above_hull = rows[i].e_above_hull
            out[i].errors.update(rows[i].errors)
        if config.specialist in ("elasticity", "thermal_expansion"):
            _property_terms(samples, rows, relaxed_ok, out, config)
    for breakdown in out:
        breakdown.terms["energy"] = energy_score(breakdown.e_above_hull)
        breakdown.reward = breakdown.terms["gate"] * _weighted_sum(breakdown.terms, config)
    return out


def _weighted_sum(terms: dict[str, float], config: RewardConfig) -> float:
    weights = {
        "parsed": config.parse, "structurally_valid": config.structural, "smact_valid": config.smact,
        "composition_match": config.composition, "energy": config.energy,
        "trace_consistency": config.trace_consistency, "spacegroup_match": config.spacegroup,
        "property": config.property,
    }
    return sum(weights[name] * value for name, value in terms.items() if name in weights)


def _property_terms(samples, rows, candidates: list[int], out: list[RewardBreakdown], config: RewardConfig) -> None:
    """Elasticity: 5 (f(K) + f(G)); thermal expansion: 5 f(CTE) for the lowest-energy samples
    of each prompt's group (so a batch of many prompts gives each prompt the same chance)."""
    with_energy = [i for i in candidates if rows[i].relaxed_structure is not None]
    if config.specialist == "thermal_expansion":
        groups: dict[str, list[int]] = defaultdict(list)
        for i in sorted(with_energy, key=lambda i: rows[i].energy_per_atom):
            groups[samples[i].prompt].append(i)
        with_energy = [i for group in groups.values() for i in group[: config.thermal_top_k]]
        names, compute = ("thermal_expansion_300k",), thermal_expansion
    else:
        names, compute = ("bulk_modulus_vrh", "shear_modulus_vrh"), elastic_moduli
    for i in with_energy:
        targets = samples[i].targets
        if not all(name in targets for name in names):
            out[i].errors["property"] = f"no target for {', '.join(names)}"
            continue
        result = compute(Structure.from_dict(rows[i].relaxed_structure), config.property_mlip or config.mlip)
        if result.error:
            out[i].errors["property"] = result.error
            continue
        buckets = [SPECIALIST_BUCKETS[name] for name in names]
        wanted = [b.index(targets[name]) for b, name in zip(buckets, names)]
        if None in wanted:
            out[i].errors["property"] = "target outside the buckets"
            continue
        scored = [(b, w, result.values[name]) for b, w, name in zip(buckets, wanted, names)]
        out[i].terms["property"] = sum(bucket_fit(b, w, value) for b, w, value in scored)
        # not weighted: the specialist's hit rate (every target bucket hit), logged and compared
        out[i].terms["property_hit"] = int(all(bucket_hit(b, w, value) for b, w, value in scored))
