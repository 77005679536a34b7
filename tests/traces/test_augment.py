"""The atom-line orders of the structure block: same crystal, other text."""

import random
import warnings

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher

from crystalreasoner.config import load_config
from crystalreasoner.data import decode_structure
from crystalreasoner.data.codec import written_coord
from crystalreasoner.tasks import Task
from crystalreasoner.traces.analysis import analyze_structure
from crystalreasoner.traces.augment import AugmentConfig, augment_structure
from crystalreasoner.traces.builder import TraceConfig, render_record


def _atom_lines(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(label, written coordinates) of each atom line of the block in ``text``."""
    block = text.split("<CIF>")[1].split("</CIF>")[0].strip().splitlines()[3:]
    return [(line.split()[0], tuple(line.split()[-3:])) for line in block]


@pytest.mark.parametrize("augment", [True, False])
@pytest.mark.parametrize("order", ["coordinates", "element_then_coordinates"])
def test_sorted_orders_write_each_line_greater_than_the_last(mp20, order, augment):
    """``coordinates``: every line greater than the one before, elements interleaved;
    ``element_then_coordinates``: grouped by element, each element's lines increasing."""
    config = load_config(TraceConfig, "tiny-sorted", {"describer": "none", "augment.atom_order": order})
    records = mp20.splits["train"][:12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen's oxidation-state guesses
        rendered = [
            render_record(r, analyze_structure(r.structure, "none"), Task.CONDITIONAL, 0, config, augment=augment)
            for r in records
        ]
    interleaved = 0
    for record, text in zip(records, (r.completion[0]["content"] for r in rendered)):
        lines = _atom_lines(text)
        elements = [label.rstrip("0123456789") for label, _ in lines]
        interleaved += elements != sorted(elements, key=elements.index)
        runs = [lines] if order == "coordinates" else [
            [line for line, el in zip(lines, elements) if el == element] for element in dict.fromkeys(elements)
        ]
        for run in runs:
            coords = [tuple(float(x) for x in c) for _, c in run]
            assert all(a < b for a, b in zip(coords, coords[1:])), f"{record.material_id}: {lines}"
        decoded = decode_structure(text)
        assert decoded.composition.reduced_formula == record.structure.composition.reduced_formula
    assert (interleaved > 0) == (order == "coordinates")


def test_element_order_groups_lines_and_keeps_the_crystal(mp20):
    structure = mp20.splits["train"][5].structure
    for order in ("element", "element_then_coordinates", "coordinates", "shuffled"):
        config = AugmentConfig(cell="niggli", shift_origin=True, atom_order=order)
        out = augment_structure(structure, config, random.Random(1))
        assert out.composition == structure.composition
        assert out.volume == pytest.approx(structure.volume)
        if order.startswith("element"):
            symbols = [site.specie.symbol for site in out]
            assert symbols == sorted(symbols, key=symbols.index)


@pytest.mark.parametrize("order", ["element", "element_then_coordinates", "coordinates", "shuffled"])
def test_first_atom_origin_puts_the_first_line_alone_at_the_origin(mp20, order):
    config = AugmentConfig(cell="niggli", shift_origin="first_atom", relabel_axes=True, atom_order=order)
    for record in mp20.splits["train"][:40]:
        out = augment_structure(record.structure, config, random.Random(3))
        written = [tuple(written_coord(x, 4) for x in site.frac_coords) for site in out]
        assert written[0] == (0.0, 0.0, 0.0), record.material_id
        assert (0.0, 0.0, 0.0) not in written[1:], record.material_id
        assert StructureMatcher().fit(out, record.structure), record.material_id
