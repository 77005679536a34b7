"""CHGNet relaxations through the MLIP interface, and a fuzz test of the whole evaluation:
malformed text and corrupted structures get a score and a recorded reason, never an exception."""

import math
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ase.calculators.calculator import Calculator
from pymatgen.core import Lattice, Structure
from threadpoolctl import threadpool_info

from crystalreasoner.config import load_config
from crystalreasoner.data import encode_structure
from crystalreasoner.evaluation.mlip import MLIPConfig, calculator_for, relax, relax_many
from crystalreasoner.evaluation.stage import EvaluateConfig, evaluate_samples, summarize
from crystalreasoner.generation.stage import GeneratedSample, parse_sample

NACL = Structure.from_spacegroup(
    "Fm-3m", Lattice.cubic(5.8), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
).get_primitive_structure()


def test_chgnet_relaxation_lowers_the_energy_within_its_step_budget():
    result = relax(NACL, load_config(MLIPConfig, "reward"))
    assert result.ok, result.error
    assert result.steps <= 20 and math.isfinite(result.energy)
    assert result.energy <= result.initial_energy + 1e-6
    assert result.structure.composition.reduced_formula == "NaCl"


def test_each_thread_relaxes_with_its_own_calculator():
    """Threads sharing one ASE calculator read each other's results (the evaluation flow's two
    shards got wrong energies and shape errors), so each thread keeps its own."""
    both_running = threading.Barrier(2)

    def calculator_of_this_thread(_):
        both_running.wait(timeout=60)  # the two calls run on two threads at once
        return calculator_for(MLIPConfig())

    here = calculator_for(MLIPConfig())  # loaded before the threads start, as in a long process
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(calculator_of_this_thread, range(2))
    assert len({id(here), id(first), id(second)}) == 3
    assert calculator_for(MLIPConfig()) is here  # kept within a thread


class _RecordsBlasThreads(Calculator):
    """The real calculator, noting how many threads numpy's BLAS may use at each call."""

    implemented_properties = ("energy", "free_energy", "forces", "stress")

    def __init__(self, inner):
        super().__init__()
        self.inner, self.blas_threads = inner, []

    def calculate(self, atoms=None, properties=None, system_changes=None):
        super().calculate(atoms, properties, system_changes)
        self.blas_threads.append(max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"))
        self.inner.calculate(atoms, properties, system_changes)
        self.results = dict(self.inner.results)


def test_relaxation_keeps_numpy_blas_to_one_thread():
    """torch's and numpy's thread pools spin on the same cores: relaxations ran ~2x slower."""
    recorder = _RecordsBlasThreads(calculator_for(MLIPConfig()))
    result = relax(NACL, load_config(MLIPConfig, "reward"), recorder)
    assert result.ok, result.error
    assert len(recorder.blas_threads) > 1 and set(recorder.blas_threads) == {1}


def test_a_batch_relaxes_in_lockstep_with_one_model_call_per_step(monkeypatch):
    """All unfinished structures go through CHGNet together at each FIRE step, and the
    lockstep loop takes the same steps as relaxing each structure on its own."""
    rattled = NACL * (2, 1, 1)
    rattled.perturb(0.15, min_distance=0.05, seed=0)
    batch = [NACL, rattled, NACL.copy().scale_lattice(NACL.volume * 1.15)]
    config = load_config(MLIPConfig, "reward").model_copy(update={"max_steps": 6})
    model = calculator_for(config).model
    calls = []
    predict = model.predict_graph
    monkeypatch.setattr(model, "predict_graph", lambda graphs, **kw: calls.append(len(graphs)) or predict(graphs, **kw))
    together = relax_many(batch, config)
    assert len(calls) <= config.max_steps + 1 and calls[0] == 3  # not one call per structure and step
    alone = [relax(structure, config) for structure in batch]
    for a, b in zip(together, alone):
        assert a.ok and b.ok and a.steps == b.steps
        assert abs(a.energy_per_atom - b.energy_per_atom) < 1e-4


def test_each_chgnet_forward_stays_within_its_graph_edge_budget(monkeypatch):
    """Peak memory of a CHGNet forward grows with its bonds and angles (64 ordinary samples in
    one forward filled 15 GB), so forwards are split by edges and an oversized graph is refused."""
    config = load_config(MLIPConfig, "reward").model_copy(update={"max_steps": 3})
    model = calculator_for(config).model
    edges = lambda s: len(model.graph_converter(s).atom_graph) + len(model.graph_converter(s).bond_graph)
    big = NACL * (3, 3, 3)
    batch = [NACL, NACL.copy().scale_lattice(NACL.volume * 1.1), big, NACL.copy().scale_lattice(NACL.volume * 0.95)]
    config = config.model_copy(update={"max_graph_edges": edges(NACL) * 2})
    assert edges(big) > config.max_graph_edges
    sizes = []
    predict = model.predict_graph
    monkeypatch.setattr(model, "predict_graph", lambda graphs, **kw: sizes.append(
        sum(len(g.atom_graph) + len(g.bond_graph) for g in graphs)) or predict(graphs, **kw))
    results = relax_many(batch, config)
    assert [r.ok for r in results] == [True, True, False, True]
    assert "graph too large to relax" in results[2].error
    assert max(sizes) == config.max_graph_edges and sizes[:2] == [edges(batch[0]) + edges(batch[1]), edges(batch[3])]
    alone = relax(batch[3], config.model_copy(update={"max_graph_edges": 50_000}))
    assert abs(results[3].energy_per_atom - alone.energy_per_atom) < 1e-4


def test_broken_structures_are_recorded_not_raised():
    nan_coords = Structure(Lattice.cubic(4), ["Na", "Cl"], [[0, 0, 0], [np.nan, 0.5, 0.5]])
    flat = Structure(Lattice([[3, 0, 0], [6, 0, 0], [0, 0, 3]]), ["Na"], [[0, 0, 0]])
    huge = NACL * (5, 5, 10)  # 500 atoms
    # structurally valid (atoms 0.6 Å apart) but 64 atoms within 3 Å of each: refused, not relaxed
    dense = Structure(Lattice.cubic(2.4), ["H"] * 64, [[i / 4, j / 4, k / 4] for i in range(4) for j in range(4) for k in range(4)])
    results = relax_many([None, nan_coords, flat, huge, dense, NACL], load_config(MLIPConfig, "reward"))
    assert [r.ok for r in results] == [False, False, False, False, False, True]
    assert "no structure" in results[0].error and "500 atoms" in results[3].error
    assert "too dense to relax" in results[4].error
    assert all(r.error for r in results[:5])


def test_a_cell_that_collapses_during_relaxation_is_stopped_before_the_model_sees_it():
    """The crowding guard runs before every model call, not only at the start: a cell that
    shrinks under FIRE would otherwise grow CHGNet's bond graph until the kernel kills the run."""
    from crystalreasoner.evaluation.mlip import _evaluate, _start

    config = load_config(MLIPConfig, "reward")
    run = _start(NACL, config)
    assert run.result.error is None
    run.atoms.set_cell(run.atoms.cell * 0.3, scale_atoms=True)  # as if FIRE had squeezed it
    _evaluate([run], None, config)  # no calculator: the guard must stop it first
    assert "too dense to relax" in run.result.error


def _sample(index: int, text: str) -> GeneratedSample:
    return parse_sample(GeneratedSample(index, 0, "p", "NaCl", None, "conditional", {}, text, "stop", 1))


def test_fuzzed_batch_scores_every_sample_and_records_why():
    rng = random.Random(0)
    good = encode_structure(NACL)
    lines = good.splitlines()
    texts = [
        "".join(rng.choice("<>CIF/P1 .0123456789\nNaCl-") for _ in range(rng.randint(0, 300)))
        for _ in range(20)
    ]
    texts += [
        good,
        good.replace(lines[-2], lines[-3]),  # two atoms on top of each other
        good.replace(lines[2], "0 0 0"),  # zero lattice lengths
        good.replace(lines[-2], "Cl 1 nan 0.5 0.5"),  # NaN coordinate
        good.replace("Cl 1", "Xq 1"),  # unknown element
        good.replace("</CIF>", ""),  # missing end of the block
        "<CIF>\nP1\n20 20 20\n90 90 90\n"  # 500 atoms on a grid 2.5 Å apart
        + "".join(f"Na 1 {i % 8 / 8} {i // 8 % 8 / 8} {i // 64 / 8}\n" for i in range(500)) + "</CIF>",
    ]
    samples = [_sample(i, t) for i, t in enumerate(texts)]
    config = EvaluateConfig(mlip=load_config(MLIPConfig, "reward"), novelty_dataset=None)
    rows = evaluate_samples(samples, config)
    assert len(rows) == len(samples)
    for row in rows:
        parsed_ok = row.metrics["structurally_valid"] == 1
        assert parsed_ok or row.errors.get("parse") or row.metrics["parsed"] == 1
        if parsed_ok:  # relaxed: an energy or a recorded MLIP failure
            assert row.e_above_hull is not None or row.errors.get("mlip") or row.errors.get("hull")
    assert rows[20].e_above_hull is not None and not rows[20].errors  # the intact block
    assert "500 atoms" in rows[26].errors["mlip"]
    assert all(rows[i].metrics["parsed"] == 0 and rows[i].errors["parse"] for i in (23, 24, 25))
    assert rows[21].metrics["structurally_valid"] == 0 and rows[22].metrics["structurally_valid"] == 0
    table = summarize(rows)
    assert table["parsed"]["mean"] < 100 and table["failures"]["parse"] >= 3
