"""The text form of a crystal that the language model reads and writes.

A structure block (SPEC)::

    <CIF>
    P1
    a b c
    alpha beta gamma
    El 1 x y z
    ...
    </CIF>

Line 1 is the space group, always ``P1`` (every site is listed); line 2 the lattice lengths
in Å; line 3 the angles in degrees; then one line per site: element symbol, occupancy ``1``
and fractional coordinates. Lines are numbered from 1 after the ``<CIF>`` tag, not counting
blank lines.

**Ours**, off by default: ``CodecConfig.site_labels`` writes each element symbol with a
number, as a CIF ``_atom_site_label``. ``ascending`` numbers the element's sites ``Mg1``,
``Mg2``…: closing an element is then a comparison of the last label with the stated count, which
the 2.9M tiny-cpu model does not learn (README, "Site labels"). ``remaining`` counts down, the
number of that element's sites still to write including this one (``Mg2``, ``Mg1``, ``O1``): the
first label copies the stated count, each next one is one less, and after a ``1`` the element is
done, so no decision needs a count of the model's own lines (tiny-cpu-remaining: composition
match 22.6 % unconstrained, from 2.8 %; README, "Remaining labels"). The decoder reads every
form; a label's number is a name, not checked.

``decode_structure`` reads model output, which can be any string at all, so it raises only
``CodecError`` and its message names the line, the field and the bad value. It checks syntax
and that the cell exists; whether atoms are too close is for evaluation to judge.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Literal, get_args

import regex
from pymatgen.core import Element, Lattice, PeriodicSite, Structure

from crystalreasoner.errors import CodecError, ConfigError

STRUCTURE_START = "<CIF>"
STRUCTURE_END = "</CIF>"
SPACE_GROUP = "P1"

# Plain decimal or scientific notation in ASCII digits: Python's float() would also take
# "nan", "inf", "1_0" and non-ASCII digits, none of which a valid block contains.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# Below this, sqrt(1 - cos²α - cos²β - cos²γ + 2 cosα cosβ cosγ) (volume / abc) is no cell.
_MIN_VOLUME_FACTOR = 1e-6

_QUOTE_LIMIT = 60

#: how the atom lines number each element's sites (see the module docstring)
SiteLabels = Literal["none", "ascending", "remaining"]

#: an atom line's first field: an element symbol, optionally followed by a label number
_SITE_FIELD = re.compile(r"([A-Z][a-z]?)([0-9]*)")


@dataclass(frozen=True)
class CodecConfig:
    """How many decimals the encoder writes.

    Attributes
    ----------
    coord_decimals
        Fractional coordinates; 8 as in the paper. 4 (0.0001 of a ~5 Å cell, < 1 mÅ) is
        enough for small models, whose token budget matters more.
    lattice_decimals
        Lengths (Å) and angles (degrees); choose per model, fewer for tiny models.
    site_labels
        ``none`` (``Mg``, ``Mg``), ``ascending`` (``Mg1``, ``Mg2``) or ``remaining`` (``Mg2``,
        ``Mg1``) on the atom lines (ours; see above).
    """

    coord_decimals: int = 8
    lattice_decimals: int = 4
    site_labels: SiteLabels = "none"

    def __post_init__(self) -> None:
        if self.site_labels not in get_args(SiteLabels):
            raise ConfigError(
                f"CodecConfig.site_labels must be one of {', '.join(get_args(SiteLabels))}, got {self.site_labels!r}"
            )
        for name in ("coord_decimals", "lattice_decimals"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 15:
                raise ConfigError(f"CodecConfig.{name} must be an integer in 0..15, got {value!r}")


def _wrap(x: float) -> float:
    """x mod 1 in [0, 1): Python's % gives exactly 1.0 for tiny negative x."""
    y = x % 1.0
    return 0.0 if y >= 1.0 else y


def _fmt(x: float, decimals: int) -> str:
    """Fixed-point text without a "-0.000" (negative zero would be a distinct token string)."""
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def written_coord(x: float, decimals: int) -> float:
    """The fractional coordinate as a block writes it: rounded, then wrapped into [0, 1), so
    0.999999999 is written as 0, not 1.00000000."""
    rounded = round(_wrap(x), decimals)
    return 0.0 if rounded >= 1.0 else rounded


def _fmt_coord(x: float, decimals: int) -> str:
    return _fmt(written_coord(x, decimals), decimals)


def encode_structure(structure: Structure, config: CodecConfig = CodecConfig()) -> str:
    """Write a structure as a block, tags included, with no trailing newline.

    Sites keep their order and positions (wrapped into the cell); the cell is written as its
    lengths and angles. Raises ``CodecError`` for a structure the format cannot express: no
    sites, a disordered site, or a species that is not a chemical element.
    """
    if len(structure) == 0:
        raise CodecError("cannot encode a structure with no sites")
    lines = [STRUCTURE_START, SPACE_GROUP]
    lines.append(" ".join(_fmt(x, config.lattice_decimals) for x in structure.lattice.abc))
    lines.append(" ".join(_fmt(x, config.lattice_decimals) for x in structure.lattice.angles))
    symbols = [_element(site, index).symbol for index, site in enumerate(structure)]
    remaining, written = Counter(symbols), Counter()
    for symbol, site in zip(symbols, structure, strict=True):
        coords = " ".join(_fmt_coord(x, config.coord_decimals) for x in site.frac_coords)
        written[symbol] += 1
        label = {"none": "", "ascending": str(written[symbol]), "remaining": str(remaining[symbol])}
        remaining[symbol] -= 1
        lines.append(f"{symbol}{label[config.site_labels]} 1 {coords}")
    lines.append(STRUCTURE_END)
    return "\n".join(lines)


def first_departure(text: str, config: CodecConfig) -> int | None:
    """Where ``text``'s first structure block stops being a prefix of what ``encode_structure``
    writes with ``config``: the offset of the first character no such block could have there
    (``54`` where an atom line's element symbol belongs, ``Å`` inside a coordinate, a sixth
    field). None without a block, or when the block, complete or cut short, is written as the
    encoder writes. Values the format cannot judge character by character (angles that make no
    cell) are not departures."""
    start = text.find(STRUCTURE_START)
    if start < 0:
        return None
    block = text[start:]
    end = block.find(STRUCTURE_END)
    if end >= 0:
        block = block[: end + len(STRUCTURE_END)]
    form = _written_form(config)
    if form.fullmatch(block, partial=True):
        return None
    viable, beyond = 0, len(block)  # the longest viable prefix is at least ``viable``, below ``beyond``
    while beyond - viable > 1:
        middle = (viable + beyond) // 2
        if form.fullmatch(block[:middle], partial=True):
            viable = middle
        else:
            beyond = middle
    return start + viable


@cache
def _written_form(config: CodecConfig) -> regex.Pattern:
    """The blocks ``encode_structure`` can write with ``config``, as one pattern (fixed decimals,
    coordinates in [0, 1), one space between fields, no blank lines)."""

    def fixed(decimals: int) -> str:
        return "[0-9]+" + (f"\\.[0-9]{{{decimals}}}" if decimals else "")

    symbols = "|".join(sorted((e.symbol for e in Element if Element.is_valid_symbol(e.symbol)), key=len, reverse=True))
    label = "" if config.site_labels == "none" else "[1-9][0-9]*"
    coordinate = "0" + (f"\\.[0-9]{{{config.coord_decimals}}}" if config.coord_decimals else "")
    numbers = " ".join([fixed(config.lattice_decimals)] * 3)
    atom = f"(?:{symbols}){label} 1 {coordinate} {coordinate} {coordinate}"
    return regex.compile(
        f"{re.escape(STRUCTURE_START)}\\n{SPACE_GROUP}\\n{numbers}\\n{numbers}\\n(?:{atom}\\n)+{re.escape(STRUCTURE_END)}"
    )


def _element(site: PeriodicSite, index: int) -> Element:
    """The chemical element of an ordered site; ``CodecError`` for anything the format cannot write."""
    if not site.is_ordered:
        raise CodecError(f"cannot encode disordered site {index} ({site.species})")
    specie = site.specie  # an Element, or a Species with an oxidation state
    element = specie if isinstance(specie, Element) else getattr(specie, "element", None)
    if not isinstance(element, Element):
        raise CodecError(f"cannot encode site {index}: {specie} is not a chemical element")
    return element


def find_structure_block(text: str) -> str:
    """Return the first ``<CIF>…</CIF>`` block of a text (e.g. reasoning followed by a block).

    Raises ``CodecError`` naming the tag that is missing.
    """
    if not isinstance(text, str):
        raise CodecError(f"expected text, got {type(text).__name__}")
    start = text.find(STRUCTURE_START)
    if start < 0:
        raise CodecError(f"no {STRUCTURE_START} start tag in the text")
    end = text.find(STRUCTURE_END, start + len(STRUCTURE_START))
    if end < 0:
        raise CodecError(f"the {STRUCTURE_START} block has no {STRUCTURE_END} end tag")
    return text[start : end + len(STRUCTURE_END)]


def _quote(text: str) -> str:
    """repr() of a value, shortened: messages about huge model outputs stay readable."""
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "…"
    return repr(text)


def _numbers(line_no: int, line: str, field: str, names: tuple[str, ...]) -> list[float]:
    """Parse a line of exactly ``len(names)`` finite numbers."""
    tokens = line.split()
    if len(tokens) != len(names):
        raise CodecError(
            f'line {line_no} ({field}): expected {len(names)} numbers "{" ".join(names)}", '
            f"got {len(tokens)}: {_quote(line)}"
        )
    values = []
    for name, token in zip(names, tokens):
        if not _NUMBER.fullmatch(token):
            raise CodecError(f"line {line_no} ({field}): {name} is not a number: {_quote(token)}")
        value = float(token)
        if not math.isfinite(value):
            raise CodecError(f"line {line_no} ({field}): {name} is too large: {_quote(token)}")
        values.append(value)
    return values


def read_angles(angles_line: str) -> tuple[list[float], float]:
    """Line 3 -> ([alpha, beta, gamma], volume / abc), checking that the angles make a cell; the
    constrained sampler also calls it to draw again an angle line that makes none."""
    angles = _numbers(3, angles_line, "lattice angles", ("alpha", "beta", "gamma"))
    for name, value in zip(("alpha", "beta", "gamma"), angles):
        if not 0 < value < 180:
            raise CodecError(
                f"line 3 (lattice angles): {name} must be between 0 and 180 degrees, got {value:g}"
            )
    cos_a, cos_b, cos_g = (math.cos(math.radians(x)) for x in angles)
    factor_sq = 1 - cos_a**2 - cos_b**2 - cos_g**2 + 2 * cos_a * cos_b * cos_g
    if factor_sq <= _MIN_VOLUME_FACTOR**2:
        raise CodecError(
            f"line 3 (lattice angles): angles {_quote(angles_line.strip())} make no valid cell "
            "(volume <= 0)"
        )
    return angles, math.sqrt(factor_sq)


def _lattice(lengths_line: str, angles_line: str) -> Lattice:
    """Lines 2 and 3 -> a lattice, checking that the cell has a finite, positive volume."""
    lengths = _numbers(2, lengths_line, "lattice lengths", ("a", "b", "c"))
    for name, value in zip("abc", lengths):
        if value <= 0:
            raise CodecError(f"line 2 (lattice lengths): {name} must be > 0 Å, got {value:g}")
    angles, volume_factor = read_angles(angles_line)
    volume = math.prod(lengths) * volume_factor
    if not (math.isfinite(volume) and volume > 0):
        raise CodecError(
            f"line 2 (lattice lengths): lengths {_quote(lengths_line.strip())} give a cell volume "
            f"of {volume:g} Å^3, not a finite positive number"
        )
    return Lattice.from_parameters(*lengths, *angles)


def site_field(field: str) -> tuple[str, int | None]:
    """An atom line's first field -> (element symbol, label number or None): ``Mg2`` -> ``("Mg", 2)``.
    The symbol is the field itself when it is no symbol-and-label, so that the caller's check
    names what was written."""
    match = _SITE_FIELD.fullmatch(field)
    if not match:
        return field, None
    return match.group(1), int(match.group(2)) if match.group(2) else None


def read_site(line_no: int, line: str) -> tuple[str, list[float]]:
    """An atom line -> (element symbol, wrapped fractional coordinates); the sampler's redraws
    also call it to draw again an atom line that cannot be read."""
    tokens = line.split()
    if len(tokens) != 5:
        raise CodecError(
            f'line {line_no} (atom): expected 5 fields "El 1 x y z", '
            f"got {len(tokens)}: {_quote(line)}"
        )
    (symbol, _), occupancy = site_field(tokens[0]), tokens[1]
    if not Element.is_valid_symbol(symbol):
        raise CodecError(f"line {line_no} (atom): unknown element symbol {_quote(tokens[0])}")
    if not _NUMBER.fullmatch(occupancy) or float(occupancy) != 1:
        raise CodecError(f"line {line_no} (atom): occupancy must be 1, got {_quote(occupancy)}")
    coords = _numbers(line_no, " ".join(tokens[2:]), "atom coordinates", ("x", "y", "z"))
    return symbol, [_wrap(x) for x in coords]


def decode_structure(text: str) -> Structure:
    """Read the first structure block of ``text`` (the block alone or a longer model output).

    Surrounding whitespace, ``\\r\\n`` line ends and blank lines are tolerated. Fractional
    coordinates are wrapped into [0, 1). Any problem raises ``CodecError`` with the 1-based
    line number within the block, the field, and the offending value quoted.
    """
    block = find_structure_block(text)
    body = block[len(STRUCTURE_START) : -len(STRUCTURE_END)]
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if not lines:
        raise CodecError(f'line 1 (space group): expected "{SPACE_GROUP}", the block is empty')
    if lines[0] != SPACE_GROUP:
        raise CodecError(f'line 1 (space group): expected "{SPACE_GROUP}", got {_quote(lines[0])}')
    if len(lines) < 3:
        missing = "lattice lengths" if len(lines) == 1 else "lattice angles"
        raise CodecError(f"line {len(lines) + 1} ({missing}): missing, the block ends first")
    lattice = _lattice(lines[1], lines[2])
    if len(lines) == 3:
        raise CodecError('line 4 (atom): the block has no atoms, expected "El 1 x y z" lines')
    sites = [read_site(line_no, line) for line_no, line in enumerate(lines[3:], start=4)]
    symbols = [symbol for symbol, _ in sites]
    coords = [xyz for _, xyz in sites]
    try:
        return Structure(lattice, symbols, coords)
    except Exception as exc:  # a safety net: every field was checked above
        raise CodecError(f"cannot build a structure from the block: {exc}") from exc
