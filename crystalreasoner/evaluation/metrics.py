"""Per-sample metrics of a generation batch and their per-prompt aggregation (SPEC §6).

Every metric is a 0/1 per sample (a sample that does not parse scores 0), averaged per prompt,
then over prompts, with the standard error over prompts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pymatgen.core import Composition, Structure

from crystalreasoner.evaluation.checks import (
    composition_matches,
    is_smact_valid,
    is_structurally_valid,
    spacegroup_number,
    trace_consistency,
)
from crystalreasoner.generation.stage import GeneratedSample
from crystalreasoner.traces.render import THINK_START, parse_trace_claims

CHEAP_METRICS = ("parsed", "structurally_valid", "smact_valid", "composition_match")


def trace_states_the_formula(sample: GeneratedSample) -> int:
    """1 when the trace's 'Cell composition' reduces to the requested formula (conditioning)."""
    claims = parse_trace_claims(sample.text)
    if not claims.composition or sample.formula is None:
        return 0
    try:
        return int(Composition(claims.composition).reduced_composition.almost_equals(
            Composition(sample.formula).reduced_composition))
    except ValueError:
        return 0


def cheap_metrics(sample: GeneratedSample, *, coordination: bool = False) -> dict[str, int]:
    """The checks that need no MLIP: parse, structural validity, SMACT, composition, the
    requested space group (space-group task), and for thinking models whether the trace restates
    the requested formula and which of its claims the structure bears out."""
    thinking = THINK_START in sample.text
    trace = {"trace_formula_match": trace_states_the_formula(sample)} if thinking else {}
    wants_spacegroup = sample.task == "space_group" and "spacegroup_number" in sample.targets
    if sample.structure is None:
        failed = dict.fromkeys(CHEAP_METRICS, 0)
        if wants_spacegroup:
            failed["spacegroup_match"] = 0
        return {**failed, **trace}
    structure = Structure.from_dict(sample.structure)
    metrics = {
        **trace,
        "parsed": 1,
        "structurally_valid": int(is_structurally_valid(structure)),
        "smact_valid": int(is_smact_valid(structure.composition)),
        "composition_match": int(
            sample.formula is not None and composition_matches(structure, sample.formula)
        ),
    }
    if wants_spacegroup:
        metrics["spacegroup_match"] = int(
            spacegroup_number(structure) == sample.targets["spacegroup_number"]
        )
    if thinking:
        claims = parse_trace_claims(sample.text)
        metrics.update(trace_consistency(structure, claims, coordination=coordination))
    return metrics


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its standard error (sample variance, n - 1; 0 for a single value)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1) / len(values))


def aggregate(per_sample: Iterable[tuple[int, dict[str, int]]]) -> dict[str, dict[str, float]]:
    """``(prompt_index, metrics)`` pairs -> {metric: {mean, stderr}} in percent, per-prompt first."""
    by_prompt: dict[int, list[dict[str, int]]] = defaultdict(list)
    for prompt_index, metrics in per_sample:
        by_prompt[prompt_index].append(metrics)
    names = sorted({name for rows in by_prompt.values() for row in rows for name in row})
    table = {}
    for name in names:
        mean, stderr = mean_and_stderr([sum(r.get(name, 0) for r in rows) / len(rows) for rows in by_prompt.values()])
        table[name] = {"mean": 100 * mean, "stderr": 100 * stderr}
    return table
