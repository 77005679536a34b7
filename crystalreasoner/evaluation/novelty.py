"""Uniqueness and novelty with pymatgen's ``StructureMatcher`` (SPEC §6 tolerances).

Pairwise matching is the slow part, so structures are bucketed by reduced formula first
(two structures of different reduced composition never match) and only bucket mates are
compared; thousands of samples against the whole bundled set take seconds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import cached_property

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

#: SPEC §6 (as in CDVAE/MatterGen)
MATCHER_TOLERANCES = {"ltol": 0.2, "stol": 0.3, "angle_tol": 5.0}


def _bucket_key(structure: Structure) -> str:
    return structure.composition.reduced_formula


class StructureIndex:
    """A reference set (e.g. the training data) that answers 'does this structure occur?'."""

    def __init__(self, structures: Iterable[Structure] = ()):
        self._buckets: dict[str, list[Structure]] = defaultdict(list)
        for structure in structures:
            self.add(structure)

    @cached_property
    def matcher(self) -> StructureMatcher:
        return StructureMatcher(**MATCHER_TOLERANCES)

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def add(self, structure: Structure) -> None:
        self._buckets[_bucket_key(structure)].append(structure)

    def contains(self, structure: Structure) -> bool:
        """Whether a structure of the index matches ``structure``."""
        return any(
            self.matcher.fit(structure, other) for other in self._buckets.get(_bucket_key(structure), ())
        )


def novelty(structures: Sequence[Structure | None], reference: StructureIndex) -> list[int | None]:
    """1 when a structure matches nothing in ``reference``; None for samples that did not parse."""
    return [None if s is None else int(not reference.contains(s)) for s in structures]


def uniqueness(structures: Sequence[Structure | None]) -> list[int | None]:
    """1 for the first occurrence of each distinct structure of the batch, 0 for its repeats."""
    seen = StructureIndex()
    out: list[int | None] = []
    for structure in structures:
        if structure is None:
            out.append(None)
            continue
        repeat = seen.contains(structure)
        out.append(int(not repeat))
        if not repeat:
            seen.add(structure)
    return out
