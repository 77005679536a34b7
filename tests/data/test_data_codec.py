import dataclasses

import pytest
from pymatgen.core import Lattice, Species, Structure

from crystalreasoner.data import (
    CodecConfig,
    decode_structure,
    encode_structure,
    find_structure_block,
    first_departure,
)
from crystalreasoner.errors import CodecError, ConfigError

NACL_BLOCK = """<CIF>
P1
4.1000 4.1000 4.1000
90.0000 90.0000 90.0000
Na 1 0.00000000 0.00000000 0.00000000
Cl 1 0.50000000 0.50000000 0.50000000
</CIF>"""


def _nacl() -> Structure:
    return Structure(Lattice.cubic(4.1), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_encode_writes_the_spec_format():
    assert encode_structure(_nacl()) == NACL_BLOCK
    short = encode_structure(_nacl(), CodecConfig(coord_decimals=3, lattice_decimals=1))
    assert short.splitlines()[2:5] == ["4.1 4.1 4.1", "90.0 90.0 90.0", "Na 1 0.000 0.000 0.000"]


@pytest.mark.parametrize(
    ("site_labels", "fields"),
    [("ascending", ["Mg1", "O1", "Mg2", "O2", "O3"]), ("remaining", ["Mg2", "O3", "Mg1", "O2", "O1"])],
)
def test_site_labels_number_each_element_and_decode_to_the_same_structure(site_labels, fields):
    structure = Structure(
        Lattice.cubic(4), ["Mg", "O", "Mg", "O", "O"], [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0], [0, 0, 0.5]]
    )
    block = encode_structure(structure, CodecConfig(coord_decimals=1, lattice_decimals=0, site_labels=site_labels))
    assert [line.split()[0] for line in block.splitlines()[4:-1]] == fields
    decoded = decode_structure(block)
    assert [site.specie.symbol for site in decoded] == ["Mg", "O", "Mg", "O", "O"]
    assert decoded.frac_coords.tolist() == structure.frac_coords.tolist()
    with pytest.raises(ConfigError, match="site_labels must be one of none, ascending, remaining, got True"):
        CodecConfig(site_labels=True)


@pytest.mark.parametrize(
    ("old", "new", "departure"),
    [
        ("Mg1 1", "54 1", "54 1"),  # a number where an element symbol belongs
        ("O2 1 0.0 0.5", "O2 1 0.0 Å.5", "Å.5"),  # trace text inside a coordinate
        ("Mg1 1 0.5 0.5 0.0", "Mg1 1 0.5 0.5 0.0 0.3", " 0.3"),  # a sixth field
        ("Mg2 1", "Mg Tb2 1", " Tb2"),  # an element symbol with no label
        ("O1 1 0.0 0.0 0.5\n", "O1 1 0.0 0.0 0.5\nVolume: 64 Å^3\n", "olume"),  # V is vanadium, Vo nothing
        ("\n4 4 4\n", "\n4 4.0 4\n", ".0 4"),  # a decimal the encoder does not write
    ],
)
def test_first_departure_is_where_a_block_leaves_the_written_form(old, new, departure):
    structure = Structure(
        Lattice.cubic(4), ["Mg", "O", "Mg", "O", "O"], [[0, 0, 0], [0.5, 0, 0], [0.5, 0.5, 0], [0, 0.5, 0], [0, 0, 0.5]]
    )
    config = CodecConfig(coord_decimals=1, lattice_decimals=0, site_labels="remaining")
    text = "<think>\nSites to write: Mg2 O3.\n</think>\n" + encode_structure(structure, config)
    assert first_departure(text, config) is None
    assert first_departure(text[:-20], config) is None  # cut short, but as the encoder writes
    assert first_departure(text.replace("90 90 90", "120 60 60"), config) is None  # no cell, but not a departure
    assert first_departure("no block at all", config) is None
    broken = text.replace(old, new, 1)
    assert broken != text
    offset = first_departure(broken, config)
    assert offset is not None and broken[offset:].startswith(departure)


def test_encode_wraps_coordinates_and_never_writes_negative_zero():
    structure = Structure(Lattice.cubic(3), ["Fe"], [[-1e-12, 0.9999999999, 1.25]])
    assert encode_structure(structure).splitlines()[4] == "Fe 1 0.00000000 0.00000000 0.25000000"
    ion = Structure(Lattice.cubic(3), [Species("Fe", 2)], [[-0.25, 0, 0]])
    assert encode_structure(ion).splitlines()[4] == "Fe 1 0.75000000 0.00000000 0.00000000"


def test_encode_rejects_what_the_format_cannot_express():
    disordered = Structure(Lattice.cubic(3), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]])
    with pytest.raises(CodecError, match="disordered site 0"):
        encode_structure(disordered)
    with pytest.raises(CodecError, match="no sites"):
        encode_structure(Structure(Lattice.cubic(3), [], []))


def test_codec_config_is_validated_and_frozen():
    with pytest.raises(ConfigError, match="coord_decimals"):
        CodecConfig(coord_decimals=-1)
    with pytest.raises(ConfigError, match="lattice_decimals"):
        CodecConfig(lattice_decimals=2.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CodecConfig().coord_decimals = 3


def test_decode_reads_the_block_from_model_output():
    crlf_and_blank_lines = NACL_BLOCK.replace("\n", "  \r\n\r\n ")
    text = f"Reasoning first.\r\n  {crlf_and_blank_lines}  \nthen <CIF>junk"
    structure = decode_structure(text)
    assert structure.lattice.abc == pytest.approx((4.1, 4.1, 4.1))
    assert [str(site.specie) for site in structure] == ["Na", "Cl"]
    assert structure.frac_coords.tolist() == [[0, 0, 0], [0.5, 0.5, 0.5]]
    assert find_structure_block(f"answer:\n{NACL_BLOCK}\n{text}") == NACL_BLOCK


def test_decode_wraps_coordinates_into_the_cell():
    block = NACL_BLOCK.replace("Cl 1 0.50000000", "Cl 1.0 -0.50000000")
    assert decode_structure(block).frac_coords[1].tolist() == [0.5, 0.5, 0.5]


def _with_line(number: int, text: str) -> str:
    """NACL_BLOCK with its ``number``-th line (1 = "P1") replaced."""
    lines = NACL_BLOCK.splitlines()
    lines[number] = text
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P1\n4 4 4", "no <CIF> start tag"),
        ("<CIF>\nP1\n4 4 4\n90 90 90\nNa 1 0 0 0", "the <CIF> block has no </CIF> end tag"),
        ("</CIF><CIF>", "the <CIF> block has no </CIF> end tag"),
        ("<CIF>\n\n</CIF>", 'line 1 (space group): expected "P1", the block is empty'),
        (_with_line(1, "P 1"), "line 1 (space group): expected \"P1\", got 'P 1'"),
        ("<CIF>\nP1\n</CIF>", "line 2 (lattice lengths): missing"),
        ("<CIF>\nP1\n4 4 4\n</CIF>", "line 3 (lattice angles): missing"),
        (
            _with_line(2, "4.1 4.1"),
            "line 2 (lattice lengths): expected 3 numbers \"a b c\", got 2: '4.1 4.1'",
        ),
        (_with_line(2, "4.1 nan 4.1"), "line 2 (lattice lengths): b is not a number: 'nan'"),
        (_with_line(2, "4.1 4.1 1e999"), "line 2 (lattice lengths): c is too large: '1e999'"),
        (_with_line(2, "4.1 -4.1 4.1"), "line 2 (lattice lengths): b must be > 0 Å, got -4.1"),
        (_with_line(2, "0 4.1 4.1"), "line 2 (lattice lengths): a must be > 0 Å, got 0"),
        (_with_line(2, "1e200 1e200 1e200"), "line 2 (lattice lengths): lengths '1e200 1e200 1e"),
        (_with_line(2, "1e-200 1e-200 1e-200"), "cell volume of 0 Å^3"),
        (_with_line(3, "90 90"), 'line 3 (lattice angles): expected 3 numbers "alpha beta gamma"'),
        (_with_line(3, "90 180 90"), "line 3 (lattice angles): beta must be between 0 and 180"),
        (_with_line(3, "10 10 100"), "line 3 (lattice angles): angles '10 10 100' make no valid"),
        (_with_line(3, "120 120 120"), "line 3 (lattice angles): angles '120 120 120' make no"),
        (_with_line(4, "Xx 1 0 0 0"), "line 4 (atom): unknown element symbol 'Xx'"),
        (_with_line(4, "na 1 0 0 0"), "line 4 (atom): unknown element symbol 'na'"),
        (_with_line(4, "Xx2 1 0 0 0"), "line 4 (atom): unknown element symbol 'Xx2'"),
        (_with_line(4, "Na1a 1 0 0 0"), "line 4 (atom): unknown element symbol 'Na1a'"),
        (_with_line(5, "Cl 0.5 0 0 0"), "line 5 (atom): occupancy must be 1, got '0.5'"),
        (_with_line(5, "Cl 1 0 0"), 'line 5 (atom): expected 5 fields "El 1 x y z", got 4'),
        (_with_line(5, "Cl 1 0 0 inf"), "line 5 (atom coordinates): z is not a number: 'inf'"),
        (_with_line(5, "Cl 1 0 ٣ 0"), "line 5 (atom coordinates): y is not a number: '٣'"),
        ("<CIF>\nP1\n4 4 4\n90 90 90\n</CIF>", "line 4 (atom): the block has no atoms"),
    ],
)
def test_decode_errors_name_line_field_and_value(text, message):
    with pytest.raises(CodecError) as excinfo:
        decode_structure(text)
    assert message in str(excinfo.value)


def test_decode_rejects_non_text():
    with pytest.raises(CodecError, match="expected text, got bytes"):
        decode_structure(NACL_BLOCK.encode())
