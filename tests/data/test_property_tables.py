"""Composition-only property tables: the bundled AFLOW CTE table and a user's CSV."""

import pytest

from crystalreasoner.data.property_tables import load_property_table
from crystalreasoner.errors import DataError
from crystalreasoner.generation.stage import prompts_from_table
from crystalreasoner.tasks import THERMAL_EXPANSION, THERMAL_MAX_ATOMS


def test_bundled_thermal_table_gives_thermal_prompts_per_split():
    rows = load_property_table("aflow-thermal-expansion")
    assert len(rows) == 4886
    assert {r.split for r in rows} == {"train", "val", "test"}
    prompts = {split: prompts_from_table(rows, split, "thermal_expansion") for split in ("train", "val")}
    assert len(prompts["val"]) > 100
    assert not {p.formula for p in prompts["train"]} & {p.formula for p in prompts["val"]}
    for p in prompts["val"]:
        cte = p.targets["thermal_expansion_300k"]
        low, high = THERMAL_EXPANSION.bounds(THERMAL_EXPANSION.index(cte))
        assert f"between {low:g} and {high:g}" in p.prompt or f"above {low:g}" in p.prompt
        assert f"fewer than {THERMAL_MAX_ATOMS} atoms" in p.prompt
        assert p.formula in p.prompt and p.task == "thermal_expansion"
    assert prompts_from_table(rows, "val", "thermal_expansion") == prompts["val"]  # seeded phrasing


def test_user_table_with_split_column_and_bad_rows(tmp_path):
    good = tmp_path / "cte.csv"
    good.write_text("formula,thermal_expansion_300K,split\nNaCl,1.2e-4,val\nMgO,3e-5,train\nCs3Sb7Bi2,1e-5,val\n")
    rows = load_property_table(good)
    assert [(r.formula, r.split) for r in rows] == [("NaCl", "val"), ("MgO", "train"), ("Cs3Bi2Sb7", "val")]
    prompts = prompts_from_table(rows, "val", "thermal_expansion")
    assert [p.formula for p in prompts] == ["NaCl"]  # 12 atoms: no QHA cell under 10
    bad = tmp_path / "bad.csv"
    bad.write_text("formula,thermal_expansion_300K\nNaCl,1e-4\nXx2,1e-5\n")
    with pytest.raises(DataError, match="line 3: formula 'Xx2'"):
        load_property_table(bad)
    with pytest.raises(DataError, match="no property table"):
        load_property_table("no-such-table")
