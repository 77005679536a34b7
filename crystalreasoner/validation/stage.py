"""Validation stage: top-k candidates of an evaluation -> atomate2 MLIP relaxations in the job
store -> DFT inputs (or jobs) -> exported structures, all linked to the generation that made them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from crystalreasoner.config import StageConfig
from crystalreasoner.errors import ArtifactNotFoundError
from crystalreasoner.evaluation.stage import generation_samples, hull_reference
from crystalreasoner.hashing import sha256_json
from crystalreasoner.stores import ArtifactDoc, ArtifactKind, ArtifactRegistry
from crystalreasoner.validation.atomate import ValidationRelaxConfig, prepare_dft, relax_candidates
from crystalreasoner.validation.export import export_structures
from crystalreasoner.validation.ranking import (
    RankingConfig,
    below_floor,
    load_evaluation_rows,
    rank_candidates,
)


class ValidationConfig(StageConfig):
    """Which candidates, how to relax them, and whether to prepare DFT."""

    preset_folder: ClassVar[str] = "validate"
    ranking: RankingConfig = RankingConfig()
    relax: ValidationRelaxConfig = ValidationRelaxConfig()
    dft: bool = True
    hull_reference: str = "bundled"


def validate_evaluation(
    registry: ArtifactRegistry, evaluation_id: str, config: ValidationConfig | None = None, job_store=None
) -> ArtifactDoc:
    """Relax the top candidates of ``evaluation_id`` through atomate2 and register the result.

    ``job_store`` defaults to a jobflow store on the registry's own back ends.
    """
    config = config or ValidationConfig()
    evaluation = registry.get(evaluation_id)
    generation_id = evaluation.parents[0]
    samples = generation_samples(registry, generation_id)
    rows = load_evaluation_rows(evaluation.location)
    candidates = rank_candidates(rows, samples, config.ranking)
    key = sha256_json({"evaluation": evaluation_id, "config": config.model_dump(mode="json")})[:16]
    out = registry.spec.files_root / "validations" / key
    out.mkdir(parents=True, exist_ok=True)
    job_store = job_store or registry.spec.job_store()
    metadata = {"generation": generation_id, "evaluation": evaluation_id}
    records = relax_candidates(
        candidates, config.relax, job_store, hull_reference(config.hull_reference), metadata, out / "jobs"
    )
    for record in records:  # the same plausibility floor as the ranking, after the full relaxation
        if record.error is None and below_floor(record.e_above_hull, config.ranking):
            record.error = (f"E_hull {record.e_above_hull:.3f} eV/atom after relaxation is below the "
                            f"{config.ranking.min_e_above_hull} eV/atom floor: taken as an MLIP artefact")
    table: list[dict[str, Any]] = []
    structures = []
    for candidate, record in zip(candidates, records):
        row = {
            "id": f"candidate-{candidate.key}", "candidate": candidate.key, "formula": candidate.formula,
            "generation": generation_id, "job_uuid": record.job_uuid, "static_uuid": record.static_uuid,
            "force_field": record.force_field, "energy_eV": record.energy,
            "energy_per_atom_eV": record.energy_per_atom, "e_above_hull_eV_per_atom": record.e_above_hull,
            "e_above_hull_at_evaluation": candidate.e_above_hull, "rank_score": candidate.score,
            "novel": candidate.metrics.get("novel"), "error": record.error,
        }
        table.append(row)
        structures.append(record.structure or candidate.structure)
    relaxed = [(c, r) for c, r in zip(candidates, records) if r.error is None]
    dft = {"status": "skipped", "message": "dft: false in the validation config"}
    if config.dft and relaxed:
        dft = prepare_dft([c for c, _ in relaxed], [r.structure for _, r in relaxed], out / "dft")
        dft.pop("flows")
    ok_rows = [row for row in table if row["error"] is None]
    ok_structures = [s for row, s in zip(table, structures) if row["error"] is None]
    files = export_structures(ok_rows, ok_structures, out / "export") if ok_rows else []
    (out / "records.json").write_text(json.dumps(table, indent=1))
    return registry.register(
        ArtifactKind.VALIDATION,
        name=f"validation of {evaluation.name}",
        config=config.model_dump(mode="json"),
        parents=[evaluation_id],
        files=[out / "records.json", *files],
        location=out,
        summary={
            "candidates": len(candidates),
            "not_ranked_below_e_hull_floor": sum(below_floor(row.get("e_above_hull"), config.ranking) for row in rows),
            "relaxed": len(ok_rows),
            "failed": {row["candidate"]: row["error"] for row in table if row["error"]},
            "records": [{k: row[k] for k in ("candidate", "formula", "job_uuid", "force_field",
                                             "energy_eV", "e_above_hull_eV_per_atom")} for row in table],
            "dft": dft,
        },
    )


def task_lineage(registry: ArtifactRegistry, job_uuid: str, job_store=None) -> tuple[dict[str, Any], list[ArtifactDoc]]:
    """An atomate2 task document (by job uuid) and the chain it came from: the validation that
    ran it, then the evaluation, generation, checkpoint, traces and dataset behind it."""
    job_store = job_store or registry.spec.job_store()
    job_store.connect()
    doc = job_store.query_one({"uuid": job_uuid}, load=True)
    if doc is None:
        raise ArtifactNotFoundError(f"no artifact and no atomate2 job {job_uuid!r} in the store")
    task = doc.get("output") or {}
    validations = registry.find(ArtifactKind.VALIDATION, **{"summary.records.job_uuid": job_uuid})
    if not validations:
        raise ArtifactNotFoundError(f"atomate2 job {job_uuid!r} is not linked to any validation artifact")
    summary = {
        "job": job_uuid, "name": doc.get("name"), "candidate": doc.get("metadata", {}).get("candidate"),
        "force_field": task.get("forcefield_name"), "formula": task.get("formula_pretty"),
        "energy_eV": (task.get("output") or {}).get("energy"), "state": task.get("state"),
    }
    return summary, [validations[0], *registry.lineage(validations[0].artifact_id)]
