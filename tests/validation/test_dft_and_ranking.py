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
