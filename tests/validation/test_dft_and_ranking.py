"""DFT without VASP writes what it can and says what is missing; ranking deduplicates."""

from pathlib import Path

from pymatgen.core import Lattice, Structure

from crystalreasoner.generation.stage import GeneratedSample
from crystalreasoner.validation.atomate import prepare_dft, vasp_status
from crystalreasoner.validation.ranking import Candidate, RankingConfig, rank_candidates

NACL = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_without_vasp_the_inputs_are_written_and_the_message_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("VASP_CMD", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    ready, missing = vasp_status()
    assert not ready and any("VASP executable" in m for m in missing)
    result = prepare_dft([Candidate(3, 1, "NaCl", NACL, 1.0, 0.0, {})], [NACL], tmp_path)
    assert result["status"] == "inputs-written" and "no VASP executable" in result["message"]
    folder = Path(tmp_path) / "candidate-3.1"
    assert {p.name for p in folder.iterdir()} == {"POSCAR", "INCAR", "KPOINTS", "POTCAR.spec"}
    assert "ENCUT" in (folder / "INCAR").read_text() and "Na" in (folder / "POTCAR.spec").read_text()
    assert len(result["flows"]) == 1 and result["flows"][0].jobs  # the atomate2 MP flow, ready to submit


def test_ranking_prefers_low_e_hull_and_drops_duplicates():
    other = NACL.copy()
    other.perturb(0.01)
    kcl = NACL.copy()
    kcl.replace_species({"Na": "K"})
    samples = [GeneratedSample(i, 0, "p", f, None, "conditional", {}, "", "stop", 1, s and s.as_dict())
               for i, (f, s) in enumerate([("NaCl", NACL), ("NaCl", other), ("KCl", kcl), ("KCl", None)])]
    rows = [{"metrics": {"structurally_valid": 1}, "e_above_hull": e} for e in (0.2, 0.1, 0.3, None)]
    rows[3]["metrics"]["structurally_valid"] = 0
    chosen = rank_candidates(rows, samples, RankingConfig(top_k=5))
    assert [c.key for c in chosen] == ["1.0", "2.0"]  # 0.0 duplicates 1.0; 3.0 is invalid
    rows[1]["e_above_hull"] = -0.85  # a squeezed cell the MLIP gets wrong: not a discovery
    chosen = rank_candidates(rows, samples, RankingConfig(top_k=5))
    assert [c.key for c in chosen] == ["0.0", "2.0"]
    assert [c.key for c in rank_candidates(rows, samples, RankingConfig(top_k=5, min_e_above_hull=None))][0] == "1.0"


def test_a_relaxation_out_of_steps_keeps_its_document_and_says_why():
    from crystalreasoner.evaluation.hull import BundledMPReference
    from crystalreasoner.validation.atomate import RelaxRecord, _read_task_document

    output = {"energy": -27.0, "n_steps": 502, "forces": [[0.0, 0.0, 0.0], [1.2, 0.0, 0.5]] * 4}
    task = {"structure": NACL.as_dict(), "output": output, "forcefield_name": "MLFF.CHGNet",
            "state": "failed", "is_force_converged": False}
    record = RelaxRecord("3.1", "uuid")
    _read_task_document(record, task, BundledMPReference())
    assert record.force_field == "MLFF.CHGNet" and record.energy == -27.0 and record.e_above_hull is not None
    assert record.error == "atomate2 job state 'failed': not force-converged after 502 steps (max force 1.30 eV/Å)"
    missing = RelaxRecord("3.2", "uuid")
    _read_task_document(missing, {}, BundledMPReference())
    assert missing.structure is None and "no atomate2 task document" in missing.error
