"""Composition-constrained decoding: only requested elements, closing only on whole units, on
lines the codec reads."""

import random
import re
from contextlib import nullcontext

import pytest
import torch
from pymatgen.core import Composition

from crystalreasoner.checkpoints import shipped_checkpoint
from crystalreasoner.data import decode_structure
from crystalreasoner.data.codec import find_structure_block, site_field
from crystalreasoner.errors import CodecError
from crystalreasoner.generation.constraints import CompositionConstraint
from crystalreasoner.generation.sampler import ContinuousBatchSampler, Request, SamplingParams
from crystalreasoner.generation.stage import GenerateConfig, GenerateStage, PromptSpec

HEADER = "<think>\nfree text\n</think>\n<CIF>\nP1\n4 4 4\n90 90 90\n"


def _allowed_texts(constraint, mask):
    return {constraint.texts[i] for i in torch.nonzero(mask).flatten().tolist()}


def test_masks_follow_the_block(tokenizer):
    constraint = CompositionConstraint(tokenizer, max_atoms=20)
    target = constraint.target("MgIn2")
    assert target.reduced == {"Mg": 1, "In": 2} and target.z is None and target.trace_lines == ()
    thinking = _allowed_texts(constraint, constraint.allowed("<think>\nanything", target))
    assert "<CIF>" not in thinking and "</CIF>" not in thinking and "Mg" in thinking  # else free
    assert _allowed_texts(constraint, constraint.allowed("<think>\nx\n</think>", target)) == {"\n"}
    assert _allowed_texts(constraint, constraint.allowed("<think>\nx\n</think>\n", target)) == {"<CIF>"}
    assert _allowed_texts(constraint, constraint.allowed("<think>\nx\n</think>\n<CIF>\nP", target)) == {"1"}
    lengths = _allowed_texts(constraint, constraint.allowed("<think>\n</think>\n<CIF>\nP1\n4.2", target))
    assert lengths == {*"0123456789", " "}  # the number goes on, or the next one starts
    assert _allowed_texts(constraint, constraint.allowed(HEADER + "Mg ", target)) == {"1"}
    assert "\n" not in _allowed_texts(constraint, constraint.allowed(HEADER + "Mg 1 0.5 0.5", target))
    start = _allowed_texts(constraint, constraint.allowed(HEADER, target))
    assert start and all(("Mg " + "x").startswith(t) or ("In " + "x").startswith(t) or t.startswith(("Mg", "In")) for t in start)
    assert "</CIF>" not in start and "Na" not in start
    one_unit = HEADER + "Mg 1 0 0 0\nIn 1 0.5 0.5 0.5\nIn 1 0.2 0.2 0.2\n"
    assert "</CIF>" in _allowed_texts(constraint, constraint.allowed(one_unit, target))
    midline = one_unit + "Mg 1 0.1"
    assert "</CIF>" not in _allowed_texts(constraint, constraint.allowed(midline, target))
    assert constraint.allowed(one_unit + "</CIF>", target).all()  # GRPO samples on to EOS


def test_stated_cell_counts_fix_z(tokenizer):
    constraint = CompositionConstraint(tokenizer, max_atoms=20)
    target = constraint.target("MgIn2", {"Mg": 2, "In": 4})
    assert target.z == 2
    one_unit = HEADER + "Mg 1 0 0 0\nIn 1 0.5 0.5 0.5\nIn 1 0.2 0.2 0.2\n"
    assert "</CIF>" not in _allowed_texts(constraint, constraint.allowed(one_unit, target))
    full = one_unit + "Mg 1 0 0 0.5\nIn 1 0.1 0.1 0.1\nIn 1 0.3 0.3 0.3\n"
    allowed = _allowed_texts(constraint, constraint.allowed(full, target))
    assert allowed == {"</CIF>"}  # every element is at its count: only the end remains


def test_site_labels_must_be_the_elements_next_number(tokenizer):
    constraint = CompositionConstraint(tokenizer, max_atoms=20)
    target = constraint.target("MgIn2", {"Mg": 1, "In": 2})
    written = HEADER + "Mg1 1 0 0 0\nIn1 1 0.5 0.5 0.5\nIn"
    assert _allowed_texts(constraint, constraint.allowed(written, target)) == {"2"}  # labelled: always
    done = written + "2 1 0.2 0.2 0.2\n"
    assert _allowed_texts(constraint, constraint.allowed(done, target)) == {"</CIF>"}
    assert decode_structure(done + "</CIF>").composition.reduced_formula == "MgIn2"


def test_remaining_site_labels_count_down_from_the_elements_count(tokenizer):
    constraint = CompositionConstraint(tokenizer, max_atoms=20)
    target = constraint.target("MgIn2")  # Z free: the first label chooses it
    assert _allowed_texts(constraint, constraint.allowed(HEADER + "In", target)) >= {"1", "2", "4", " "}  # first line
    written = HEADER + "In4 1 0 0 0\nIn3 1 0.5 0.5 0.5\n"
    assert "</CIF>" not in _allowed_texts(constraint, constraint.allowed(written, target))
    assert _allowed_texts(constraint, constraint.allowed(written + "In", target)) == {"2"}  # the count holds
    assert _allowed_texts(constraint, constraint.allowed(written + "Mg", target)) == {"1", "2"}  # Z = 2
    done = written + "Mg2 1 0 0 0.5\nIn2 1 0.2 0.2 0.2\nMg1 1 0.1 0.1 0.1\nIn1 1 0.3 0.3 0.3\n"
    assert _allowed_texts(constraint, constraint.allowed(done, target)) == {"</CIF>"}
    assert decode_structure(done + "</CIF>").composition.reduced_formula == "MgIn2"


def test_stated_cell_counts_force_the_traces_composition_lines(tokenizer):
    """Once a line reaches a forced line's key, a random walk through the mask writes that line."""
    constraint = CompositionConstraint(tokenizer, max_atoms=20)
    target = constraint.target("MgIn2", {"Mg": 2, "In": 4})
    assert target.trace_lines == (
        "Cell composition: Mg2 In4 (6 atoms).", "Elements by electronegativity: Mg, In.", "Sites to write: Mg2 In4."
    )
    rng = random.Random(0)
    starts = ("<think>\nCell composition:", "<think>\nSymmetry:\nElements by electronegativity:", "<think>\nSites to write:")
    for start in starts:
        for _ in range(5):
            text = start
            while "\n" not in text[len(start):]:
                text += rng.choice(sorted(_allowed_texts(constraint, constraint.allowed(text, target))))
            assert text[: text.index("\n", len(start))].rsplit("\n", 1)[-1] in target.trace_lines
    free = constraint.allowed("<think>\nSpace group: ", target)  # other lines are free
    assert free.sum() == len(constraint.texts) - 2  # but for the block's tags
    assert constraint.allowed("<think>\nCell composition:", constraint.target("MgIn2")).equal(free)  # no counts


def test_an_atom_line_too_close_to_an_earlier_atom_is_drawn_again(tokenizer):
    """The redraw point keeps every token before the offending line, and only those."""
    constraint = CompositionConstraint(tokenizer, max_atoms=12, min_distance=0.5)
    target = constraint.target("MgIn2")
    before = HEADER + "Mg 1 0 0 0\n"
    for line, redrawn in (("In 1 0.05 0 0.99\n", True), ("In 1 0.5 0.5 0.5\n", False)):
        ids = tokenizer(before + line, add_special_tokens=False)["input_ids"]
        keep = constraint.redraw_point(before + line, ids)
        if redrawn:  # 0.2 A from the Mg at the origin, across the periodic boundary
            assert tokenizer.decode(ids[:keep]) == before
        else:
            assert keep is None
    assert CompositionConstraint(tokenizer).redraw_point(before + "In 1 0 0 0\n", [0]) is None  # off by default

    mask = constraint.token_mask({"0": target})
    text = before + "In 1 0 0 0\n"  # on top of the Mg
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for attempt in range(constraint.max_redraws + 1):
        result = mask([Request("0", [])], [ids])
        assert (0 in result.rewind) == (attempt < constraint.max_redraws)  # then it is kept


def _assert_redraw(constraint, tokenizer, before: str, line: str, redrawn: bool, rest: str) -> None:
    """``line`` after ``before`` is taken back whole exactly when the codec rejects the block
    ``before + line + rest``; otherwise it stands."""
    ids = tokenizer(before + line, add_special_tokens=False)["input_ids"]
    keep = constraint.redraw_point(before + line, ids)
    with pytest.raises(CodecError) if redrawn else nullcontext():
        decode_structure(before + line + rest)
    assert (tokenizer.decode(ids[:keep]) == before) if redrawn else keep is None


def test_an_angle_line_that_makes_no_cell_is_drawn_again(tokenizer):
    """120, 60, 60 degrees (a sampled line the codec rejects: volume 0) is taken back whole;
    angles that make a cell stand."""
    constraint = CompositionConstraint(tokenizer, max_atoms=12, min_distance=0.5)
    for line, redrawn in (("120.000 60.000 60.000\n", True), ("90 90 120\n", False)):
        _assert_redraw(constraint, tokenizer, "<CIF>\nP1\n4 4 4\n", line, redrawn, "Mg 1 0 0 0\n</CIF>")


def test_an_atom_line_the_codec_cannot_read_is_drawn_again(tokenizer):
    """A line with a field too many or a stray word (what unconstrained samples get wrong) is
    taken back whole, first atom line or later; a readable line stands."""
    constraint = CompositionConstraint(tokenizer, min_distance=0.5)
    for before in (HEADER, HEADER + "Mg 1 0.1 0.2 0.3\n"):
        for line, redrawn in (
            ("O 1 0.6 0.7 0.8 0.9\n", True), ("O 1 0.6 0.7\n", True), ("O 1 0.6 0.7 and\n", True),
            ("O 1 0.6 0.7 0.8\n", False),
        ):
            _assert_redraw(constraint, tokenizer, before, line, redrawn, "</CIF>")


def test_without_targets_the_mask_only_redraws_close_atoms(tokenizer):
    """Unconstrained decoding with redraws: a site written twice is drawn again, nothing is masked."""
    constraint = CompositionConstraint(tokenizer, min_distance=0.5)
    mask = constraint.token_mask(None)
    before = HEADER + "Mg 1 0.1 0.2 0.3\n"
    for line, redrawn in (("Mg 1 0.1 0.2 0.3\n", True), ("Xe 1 0.6 0.7 0.8\n", False)):
        ids = tokenizer(before + line, add_special_tokens=False)["input_ids"]
        result = mask([Request(line, [])], [ids])
        assert (0 in result.rewind) == redrawn
        assert bool(result.allowed.all())  # any element, any token: only the redraw acts
        if redrawn:
            assert tokenizer.decode(ids[: result.rewind[0]]) == before
    assert sum(constraint.redraws.values()) == 1


def test_random_walks_through_the_mask_always_give_a_readable_block_of_the_composition(tokenizer):
    """A random policy restricted by the mask (numbers included, the cell given) ends on Z units
    the codec reads."""
    constraint = CompositionConstraint(tokenizer, max_atoms=12)
    rng = random.Random(0)
    for formula in ("MgIn2", "SrTiO3", "NaCl", "Si"):
        target = constraint.target(formula)
        text = "<think>\nfree text\n</think>\n<CIF>\nP1\n4 4 4\n90 90 90\n"  # a cell that exists
        while not text.endswith("</CIF>"):
            text += rng.choice(sorted(_allowed_texts(constraint, constraint.allowed(text, target))))
        structure = decode_structure(text)
        assert structure.composition.reduced_formula == Composition(formula).reduced_formula


def test_constrained_sampling_from_a_model_respects_the_block(tokenizer, tiny_model):
    """With the real sampler: a forced prefix opens the block; every atom line uses allowed elements."""
    constraint = CompositionConstraint(tokenizer, max_atoms=12)
    prompt = tokenizer(HEADER, add_special_tokens=False)["input_ids"]
    targets = {str(i): constraint.target("MgIn2") for i in range(8)}
    sampler = ContinuousBatchSampler(tiny_model, stop_ids={constraint.end_id}, slots=8)
    mask = constraint.token_mask(targets)

    def prefixed(requests, generated):  # the prompt is part of the block text
        return mask(requests, [prompt + g for g in generated])

    for completion in sampler.generate([Request(str(i), prompt) for i in range(8)],
                                       SamplingParams(max_new_tokens=60, seed=3), prefixed):
        text = tokenizer.decode(completion.token_ids, skip_special_tokens=False)
        for line in text.split("\n"):
            if line and not line.startswith("</CIF>"):
                assert line.split(" ")[0] in {"Mg", "In"} or line.startswith(("Mg", "In"))


def _sites_to_write(text: str) -> Composition | None:
    """The cell counts a trace ends on ("Sites to write: Gd3 Mg3 Pd3."), None without that line."""
    match = re.search(r"^Sites to write: ((?:[A-Z][a-z]?\d+ ?)+)\.$", text, re.MULTILINE)
    return Composition(match.group(1)) if match else None


def _counts_down(labels: list[tuple[str, int | None]]) -> bool:
    """The labels form count-downs that each end at 1: after a label above 1 comes the same
    element one lower."""
    pairs = zip(labels, labels[1:] + [("", 1)])
    return labels[-1][1] == 1 and all(n == 1 or (b == a and m == n - 1) for (a, n), (b, m) in pairs)


def test_the_shipped_restated_model_counts_down_and_the_constraint_keeps_its_labels():
    """The shipped tiny-cpu-restated model writes count-downs (most blocks: it still slips), of
    the counts its trace ends on ("Sites to write: …"; in most blocks); constrained, every block
    has the requested composition and each element's labels run down to 1 or up from 1 (a first
    ``1`` reads as either)."""
    checkpoint = shipped_checkpoint("tiny-cpu-restated")
    prompt = PromptSpec(
        "I am looking for a material with composition Gd3Mg3Pd3 with a band gap of about 0.00 eV "
        "and energy above hull 0.000 eV/atom. Write its crystal structure."
    )
    for constrained in (False, True):
        samples = GenerateStage(GenerateConfig(n_samples=8, constrained=constrained)).sample(checkpoint, [prompt])
        blocks = [find_structure_block(s.text) for s in samples if s.structure is not None]
        labels = [[site_field(line.split(" ", 1)[0]) for line in block.splitlines()[4:-1]] for block in blocks]
        assert len(blocks) >= 6
        if not constrained:
            assert sum(map(_counts_down, labels)) >= 0.75 * len(blocks)
            restated = [_sites_to_write(s.text) for s in samples if s.structure is not None]
            follows = [counts == decode_structure(b).composition for counts, b in zip(restated, blocks)]
            assert sum(follows) >= 0.5 * len(blocks)
            continue
        for block, lines in zip(blocks, labels, strict=True):
            assert decode_structure(block).composition.reduced_formula == "GdMgPd"
            for element in {symbol for symbol, _ in lines}:
                numbers = [n for symbol, n in lines if symbol == element]
                down = list(range(len(numbers), 0, -1))
                assert numbers in (down, down[::-1]), block
