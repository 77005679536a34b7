import math

import pytest
from pymatgen.core import Lattice, Structure

from crystalreasoner.data import (
    CrystalRecord,
    LoadReport,
    SkippedRow,
    check_structure,
    clean_properties,
)


def _nacl(repeat: int = 1) -> Structure:
    structure = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return structure * (repeat, 1, 1)


def test_record_formula_and_element_count():
    record = CrystalRecord("mp-22862", _nacl(2), {"band_gap": 5.0}, "train", "test")
    assert record.formula == "NaCl"
    assert record.n_elements == 2


def test_check_structure_accepts_an_ordered_small_cell():
    assert check_structure(_nacl(), max_atoms=20) is None
    assert check_structure(_nacl(20), max_atoms=None) is None


def test_check_structure_names_the_problem():
    disordered = Structure(Lattice.cubic(3), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    assert check_structure(disordered, 20) == "partial occupancy on site 0 (Fe0.5 Co0.5)"
    vacancy = Structure(Lattice.cubic(3), ["Na", {"Cl": 0.75}], [[0, 0, 0], [0.5, 0.5, 0.5]])
    assert check_structure(vacancy, 20) == "partial occupancy on site 1 (Cl0.75)"
    assert check_structure(_nacl(12), 20) == "24 atoms > max_atoms=20"
    assert check_structure(Structure(Lattice.cubic(3), [], []), 20) == "structure has no atoms"


def test_clean_properties_keeps_known_values_under_canonical_names():
    raw = {
        "band_gap": 1.5,
        "energy_above_hull": "0.02",
        "spacegroup.number": 225.0,
        "formation_energy_per_atom": math.nan,
        "bulk_modulus_vrh": None,
        "shear_modulus_vrh": " ",
        "pretty_formula": "NaCl",
        "unknown": 3,
    }
    cleaned = clean_properties(raw)
    assert cleaned == {"band_gap": 1.5, "e_above_hull": 0.02, "spacegroup_number": 225}
    assert isinstance(cleaned["spacegroup_number"], int)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"band_gap": "n.a."}, "property band_gap is not a number: 'n.a.'"),
        ({"band_gap": True}, "property band_gap is not a number: True"),
        ({"band_gap": [1.0]}, "property band_gap is not a number: [1.0]"),
        ({"bulk_modulus_vrh": math.inf}, "property bulk_modulus_vrh is not finite: inf"),
        ({"spacegroup_number": 12.5}, "property spacegroup_number is not an integer: 12.5"),
    ],
)
def test_clean_properties_rejects_values_that_are_not_numbers(raw, message):
    with pytest.raises(ValueError) as excinfo:
        clean_properties(raw)
    assert str(excinfo.value) == message


def test_load_report_extend_merges_in_place():
    first = LoadReport([CrystalRecord("a", _nacl())], [SkippedRow("f", "1", "why")])
    second = LoadReport([CrystalRecord("b", _nacl())], [SkippedRow("g", "2", "why not")])
    assert first.extend(second) is first
    assert [r.material_id for r in first.records] == ["a", "b"]
    assert [s.row for s in first.skipped] == ["1", "2"]
