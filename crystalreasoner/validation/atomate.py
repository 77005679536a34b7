"""MLIP relaxation of candidates with atomate2's ``ForceFieldRelaxMaker`` run by jobflow, and
VASP inputs for DFT (atomate2 MP double relax + static) written or run when VASP is configured.

Task documents go to a jobflow ``JobStore`` built on the project's own store back ends, so the
relaxation records sit next to the artifacts they belong to.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Structure

from crystalreasoner.config import StageConfig
from crystalreasoner.evaluation.hull import HullReference
from crystalreasoner.evaluation.mlip import Backend, single_threaded_blas
from crystalreasoner.validation.ranking import Candidate

#: our back-end names -> atomate2's force-field names
ATOMATE2_FORCE_FIELDS = {"chgnet": "CHGNet", "sevennet": "SevenNet", "mace": "MACE"}


class ValidationRelaxConfig(StageConfig):
    """atomate2 force-field relaxation: full, not the reward's 20 steps."""

    backend: Backend = "chgnet"
    model_path: str | None = None  # MACE model file
    steps: int = 500
    fmax: float = 0.05
    static: bool = False  # a single-point job on the relaxed structure afterwards


@dataclass
class RelaxRecord:
    """What validation learned about one candidate; ``error`` when its job failed."""

    candidate: str  # "<prompt>.<sample>"
    job_uuid: str
    force_field: str | None = None
    energy: float | None = None  # eV, total
    energy_per_atom: float | None = None
    e_above_hull: float | None = None
    structure: Structure | None = None
    static_uuid: str | None = None
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def relax_maker(config: ValidationRelaxConfig, static: bool = False):
    from atomate2.forcefields.jobs import ForceFieldRelaxMaker, ForceFieldStaticMaker

    calculator_kwargs = {"model": config.model_path} if config.backend == "mace" else {}
    if config.backend == "mace" and not config.model_path:
        raise ValueError("the mace back end needs model_path (a local model file)")
    name = ATOMATE2_FORCE_FIELDS[config.backend]
    if static:
        return ForceFieldStaticMaker(force_field_name=name, calculator_kwargs=calculator_kwargs)
    return ForceFieldRelaxMaker(
        force_field_name=name, steps=config.steps, relax_kwargs={"fmax": config.fmax},
        calculator_kwargs=calculator_kwargs,
    )


@single_threaded_blas
def relax_candidates(
    candidates: Sequence[Candidate],
    config: ValidationRelaxConfig,
    job_store,
    hull: HullReference,
    metadata: dict[str, Any] | None = None,
    work_dir: str | Path | None = None,
) -> list[RelaxRecord]:
    """One atomate2 relaxation job per candidate (plus a static job when configured), run with
    ``jobflow.run_locally`` into ``job_store``; a failed job is recorded, the others go on."""
    from jobflow import Flow, run_locally

    jobs, records = [], []
    for candidate in candidates:
        relax = relax_maker(config).make(candidate.structure)
        relax.name = f"relax {candidate.key} {candidate.formula}"
        relax.update_metadata({**(metadata or {}), "candidate": candidate.key, "formula": candidate.formula})
        jobs.append(relax)
        record = RelaxRecord(candidate.key, relax.uuid)
        if config.static:
            static = relax_maker(config, static=True).make(relax.output.structure)
            static.update_metadata({**(metadata or {}), "candidate": candidate.key})
            jobs.append(static)
            record.static_uuid = static.uuid
        records.append(record)
    if not jobs:
        return records
    work_dir = Path(work_dir or ".").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    run_locally(Flow(jobs, name="crystalreasoner validation"), store=job_store, ensure_success=False,
                create_folders=True, root_dir=work_dir, log=False)
    job_store.connect()
    for record in records:
        doc = job_store.query_one({"uuid": record.job_uuid}, load=True)
        _read_task_document(record, (doc or {}).get("output") or {}, hull)
    return records


def _read_task_document(record: RelaxRecord, task: dict[str, Any], hull: HullReference) -> None:
    """Fill ``record`` from an atomate2 force-field task document.

    A relaxation that ran out of steps still has a document (state ``failed``): its last
    structure and energy are kept, and the error says why it does not count as validated.
    """
    if not task.get("structure"):
        record.error = f"no atomate2 task document (job state {task.get('state', 'missing')!r}; see the run log)"
        return
    output = task["output"]
    record.force_field = str(task.get("forcefield_name"))
    record.structure = Structure.from_dict(task["structure"])
    record.energy = float(output["energy"])
    record.energy_per_atom = record.energy / len(record.structure)
    record.extras["n_steps"] = output.get("n_steps")
    e_hull = hull.e_above_hull_from_energy(record.structure.composition, record.energy)
    record.e_above_hull = e_hull.e_above_hull
    if task.get("state") != "successful":
        max_force = float(np.linalg.norm(np.asarray(output.get("forces") or [[0, 0, 0]]), axis=1).max())
        converged = "" if task.get("is_force_converged") else (
            f": not force-converged after {output.get('n_steps')} steps (max force {max_force:.2f} eV/Å)")
        record.error = f"atomate2 job state {task.get('state')!r}{converged}"
    elif e_hull.error:
        record.error = f"hull: {e_hull.error}"


def vasp_status() -> tuple[bool, list[str]]:
    """Whether VASP can run here, and what is missing when it cannot."""
    from pymatgen.core import SETTINGS

    missing = []
    if not (os.environ.get("VASP_CMD") or shutil.which("vasp_std")):
        missing.append("no VASP executable (set VASP_CMD or put vasp_std on PATH)")
    if not SETTINGS.get("PMG_VASP_PSP_DIR"):
        missing.append("no pseudopotentials (set PMG_VASP_PSP_DIR in ~/.config/.pmgrc.yaml)")
    return not missing, missing


def prepare_dft(candidates: Sequence[Candidate], structures: Sequence[Structure], out_dir: str | Path) -> dict[str, Any]:
    """The atomate2 MP double-relax + static flow per candidate; without VASP, its first job's
    inputs (POSCAR, INCAR, KPOINTS, POTCAR.spec) are written and the message says what is missing."""
    from atomate2.vasp.flows.mp import MPGGADoubleRelaxStaticMaker
    from pymatgen.io.vasp.sets import MPRelaxSet

    ready, missing = vasp_status()
    out = Path(out_dir)
    flows = []
    for candidate, structure in zip(candidates, structures):
        flows.append(MPGGADoubleRelaxStaticMaker().make(structure))
        if not ready:
            folder = out / f"candidate-{candidate.key}"
            MPRelaxSet(structure).write_input(folder, potcar_spec=True)
    if ready:
        return {"status": "ready", "flows": flows, "message": "VASP configured: submit the flows"}
    return {
        "status": "inputs-written",
        "flows": flows,
        "folder": str(out),
        "message": "DFT not run: " + "; ".join(missing) + f". VASP inputs written to {out}.",
    }
