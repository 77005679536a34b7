"""Choose the top-k candidates of an evaluated batch by a configurable score, deduplicated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pymatgen.core import Structure

from crystalreasoner.config import StageConfig
from crystalreasoner.evaluation.novelty import StructureIndex
from crystalreasoner.generation.stage import GeneratedSample


class RankingConfig(StageConfig):
    """score = -e_hull_weight * E_hull + novel_weight * novel + unique_weight * unique
    + smact_weight * smact_valid; samples without E_hull rank after all those with one.

    ``min_e_above_hull``: an E_hull further below the reference hull than this is taken as an
    MLIP artefact (a squeezed or torn cell the potential gets wrong), not a discovery, and the
    sample is not ranked. Genuine new ground states rarely sit more than ~0.1 eV/atom below MP's
    hull, while the MLIP's own error is a few tens of meV/atom. ``None`` ranks everything.
    """

    top_k: int = 10
    min_e_above_hull: float | None = -0.2
    e_hull_weight: float = 1.0
    novel_weight: float = 0.1
    unique_weight: float = 0.0
    smact_weight: float = 0.05


@dataclass
class Candidate:
    """A sample chosen for validation, with where it came from."""

    prompt_index: int
    sample_index: int
    formula: str
    structure: Structure  # the evaluation's relaxed structure when there is one
    score: float
    e_above_hull: float | None
    metrics: dict[str, int]

    @property
    def key(self) -> str:
        return f"{self.prompt_index}.{self.sample_index}"


def load_evaluation_rows(location: str | Path) -> list[dict]:
    return [json.loads(line) for line in (Path(location) / "per_sample.jsonl").read_text().splitlines()]


def below_floor(e_hull: float | None, config: RankingConfig) -> bool:
    """Whether an E_hull is too far below the hull to be believed (see ``RankingConfig``)."""
    return e_hull is not None and config.min_e_above_hull is not None and e_hull < config.min_e_above_hull


def rank_candidates(rows: Sequence[dict], samples: Sequence[GeneratedSample], config: RankingConfig) -> list[Candidate]:
    """The best ``top_k`` structurally valid samples, one per distinct structure."""
    scored = []
    for row, sample in zip(rows, samples):
        metrics = row["metrics"]
        if not metrics.get("structurally_valid") or sample.structure is None:
            continue
        e_hull = row.get("e_above_hull")
        if below_floor(e_hull, config):
            continue
        score = (
            config.novel_weight * metrics.get("novel", 0)
            + config.unique_weight * metrics.get("unique", 0)
            + config.smact_weight * metrics.get("smact_valid", 0)
            - (config.e_hull_weight * e_hull if e_hull is not None else 0.0)
        )
        scored.append((e_hull is None, -score, row, sample))
    scored.sort(key=lambda item: item[:2])
    chosen: list[Candidate] = []
    seen = StructureIndex()
    for _, negative_score, row, sample in scored:
        structure = Structure.from_dict(row.get("relaxed_structure") or sample.structure)
        if seen.contains(structure):
            continue
        seen.add(structure)
        chosen.append(Candidate(
            sample.prompt_index, sample.sample_index, structure.composition.reduced_formula, structure,
            -negative_score, row.get("e_above_hull"), row["metrics"],
        ))
        if len(chosen) == config.top_k:
            break
    return chosen
