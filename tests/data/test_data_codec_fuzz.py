"""decode_structure reads raw model output: whatever the text, it returns a structure or
raises CodecError, and an error inside a complete block names its line."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure

from crystalreasoner.data import STRUCTURE_END, STRUCTURE_START, decode_structure, encode_structure
from crystalreasoner.errors import CodecError

# No example database: the suite must not write files into the checkout.
FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

VALID_BLOCKS = [
    encode_structure(Structure(Lattice.cubic(4.1), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])),
    encode_structure(
        Structure(
            Lattice.from_parameters(5.77, 5.77, 5.77, 138.17, 138.17, 60.64),
            ["Lu", "Si", "Si", "Pd", "Pd"],
            [[0, 0, 0], [0.615, 0.615, 0], [0.385, 0.385, 0], [0.25, 0.75, 0.5], [0.75, 0.25, 0.5]],
        )
    ),
    encode_structure(
        Structure(
            Lattice.from_parameters(3.1, 4.7, 9.2, 81, 97.5, 113),
            ["O", "Ti"],
            [[0.1, 0.2, 0.3], [0.9, 0.05, 0.5]],
        )
    ),
]


def _check(text: str) -> None:
    """The decode contract, asserted for one input."""
    try:
        structure = decode_structure(text)
    except CodecError as exc:
        start = text.find(STRUCTURE_START)
        if start >= 0 and text.find(STRUCTURE_END, start + len(STRUCTURE_START)) >= 0:
            assert str(exc).startswith("line "), str(exc)
        return
    assert isinstance(structure, Structure) and len(structure) > 0
    assert math.isfinite(structure.volume) and structure.volume > 0
    assert ((structure.frac_coords >= 0) & (structure.frac_coords < 1)).all()


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-2, max_value=200).map(lambda x: f"{x:.4f}"),
    st.floats(min_value=-0.5, max_value=1.5).map(lambda x: f"{x:.8f}"),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e308", "1e309", "-0", "-0.0", "0", "1", "1.", ".5", "1e-320"]
    ),
)
ELEMENTS = st.sampled_from(["H", "Fe", "O", "Og", "D", "Xx", "fe", "X", "", "1"])
TOKENS = st.one_of(
    NUMBERS,
    ELEMENTS,
    st.sampled_from(["P1", "P 1", STRUCTURE_START, STRUCTURE_END, "\n", "\r\n", "\u2028", "\x00"]),
    st.text(max_size=3),
)
ANY_LINE = st.lists(TOKENS, max_size=6).map(" ".join)
THREE_NUMBERS = st.lists(NUMBERS, min_size=3, max_size=3).map(" ".join)


def _triple(low: float, high: float) -> st.SearchStrategy[str]:
    numbers = st.floats(low, high).map(lambda x: f"{x:.4f}")
    return st.lists(numbers, min_size=3, max_size=3).map(" ".join)


def _mostly(good: st.SearchStrategy[str], bad: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``good`` about three times in four, so that most examples get past the line."""
    return st.sampled_from([good, good, good, bad]).flatmap(lambda strategy: strategy)


ATOM_LINE = st.tuples(
    _mostly(st.sampled_from(["H", "Fe", "O", "Og"]), ELEMENTS),
    _mostly(st.just("1"), st.sampled_from(["1.0", "0.5", "2", "x"])),
    _mostly(_triple(-1, 2), THREE_NUMBERS),
).map(" ".join)


@FUZZ
@given(st.text())
def test_arbitrary_text(text):
    _check(text)
    _check(f"{STRUCTURE_START}{text}{STRUCTURE_END}")


@FUZZ
@given(st.lists(st.tuples(TOKENS, st.sampled_from([" ", " ", "\n", "\r\n"])), max_size=40))
def test_token_soup(pieces):
    body = "".join(token + separator for token, separator in pieces)
    _check(body)
    _check(f"{STRUCTURE_START}\n{body}\n{STRUCTURE_END}")


@FUZZ
@given(
    _mostly(st.just("P1"), ANY_LINE),
    _mostly(_triple(0.5, 30), st.one_of(THREE_NUMBERS, ANY_LINE)),
    _mostly(_triple(20, 160), st.one_of(THREE_NUMBERS, ANY_LINE)),
    st.lists(_mostly(ATOM_LINE, ANY_LINE), max_size=6),
    st.sampled_from(["\n", "\r\n", "\n\n  "]),
)
def test_plausible_lines(header, lengths, angles, atoms, newline):
    _check(newline.join([STRUCTURE_START, header, lengths, angles, *atoms, STRUCTURE_END]))


@st.composite
def mutated_blocks(draw) -> str:
    """A valid block after 1-4 edits: a line deleted, duplicated, swapped or inserted, or a
    field replaced by a token; the tags stay, so every error must name a line."""
    lines = draw(st.sampled_from(VALID_BLOCKS)).splitlines()[1:-1]
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        j = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "duplicate", "swap", "field", "insert"]))
        if operation == "delete":
            del lines[i]
        elif operation == "duplicate":
            lines.insert(j, lines[i])
        elif operation == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif operation == "insert":
            lines.insert(i, draw(ANY_LINE))
        else:
            fields = lines[i].split() or [""]
            k = draw(st.integers(0, len(fields) - 1))
            fields[k] = draw(TOKENS)
            lines[i] = " ".join(fields)
    return "\n".join([STRUCTURE_START, *lines, STRUCTURE_END])


@FUZZ
@given(mutated_blocks())
def test_mutated_valid_blocks(block):
    _check(block)


def test_valid_blocks_decode():
    for block in VALID_BLOCKS:
        assert decode_structure(block).formula
