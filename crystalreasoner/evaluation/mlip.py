"""Machine-learned interatomic potentials: energies and relaxations that never kill a batch.

Back ends: CHGNet (default; weights inside its wheel), SevenNet-0 (inside its wheel), MACE from
a local model file (no hub downloads). A relaxation has a step budget (20 for rewards, hundreds
for validation), a per-structure wall-time limit, and NaN/explosion detection; a failure is
recorded on that structure with its reason and the batch goes on.
"""

from __future__ import annotations

import math
import os
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor
from threadpoolctl import threadpool_limits

from crystalreasoner.config import StageConfig

#: e3nn (MACE, SevenNet) unpickles its own constants with torch.load; torch >= 2.6 refuses
#: that by default. The flag must be set before e3nn is imported, so it is set here, once.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

Backend = Literal["chgnet", "sevennet", "mace"]


class MLIPConfig(StageConfig):
    """Which potential, and how to relax with it; presets in ``presets/mlip``."""

    preset_folder: ClassVar[str] = "mlip"
    backend: Backend = "chgnet"
    model_path: str | None = None  # MACE: a local .model file; SevenNet: a checkpoint (default 7net-0)
    device: str = "cpu"
    max_steps: int = 300  # 20 for rewards (SPEC §5), 300 for validation
    fmax: float = 0.05  # eV/Å
    relax_cell: bool = True
    timeout_s: float = 120.0  # per structure
    max_atoms: int = 200  # larger cells are refused (recorded), not attempted
    max_energy_per_atom: float = 50.0  # |E|/atom beyond this (eV) is an explosion
    max_volume_change: float = 4.0  # cell volume growing or shrinking more than this factor
    batch_size: int = 64  # structures per model call (CHGNet relaxes a batch in lockstep)
    #: atoms within 3 Å of any one atom beyond this are refused (recorded): a valid but absurdly
    #: dense cell makes CHGNet's bond graph grow with the square of it (one such GRPO batch
    #: took 24 GB and was killed); the mp20-mini training crystals have at most 18
    max_neighbors: int = 40
    #: bonds (5 Å) plus angles (3 Å) of all graphs in one CHGNet forward; each costs ~85 KB of
    #: peak memory on CPU (forces and stress by autograd; ``bench/bench_mlip_memory.py``), so
    #: 50,000 is ~4 GB. 64 ordinary samples in one forward filled 15 GB in a compare run.
    #: A structure whose graph alone is larger is refused (recorded).
    max_graph_edges: int = 50_000


#: the radius of the crowding check (CHGNet's bond-graph cutoff)
DENSE_RADIUS = 3.0


class MLIPError(RuntimeError):
    """A relaxation that cannot be trusted (NaN, explosion, timeout)."""


@dataclass
class RelaxResult:
    """One structure's outcome; ``error`` says why when there is no energy."""

    energy: float | None = None  # eV, total, as the potential gives it
    energy_per_atom: float | None = None
    structure: Structure | None = None  # relaxed
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None
    initial_energy: float | None = None
    extras: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.calculators: dict[tuple, object] = {}


_per_thread = _PerThread()


def load_calculator(backend: Backend = "chgnet", model_path: str | None = None, device: str = "cpu"):
    """An ASE calculator for the back end, kept (loading takes seconds) but one per thread: a
    calculator holds the atoms and results of its last call, and two threads sharing one (the
    evaluation flow's shards on Prefect's thread task runner) got each other's energies."""
    key = (backend, model_path, device)
    if key not in _per_thread.calculators:
        _per_thread.calculators[key] = _new_calculator(*key)
    return _per_thread.calculators[key]


def _new_calculator(backend: Backend, model_path: str | None, device: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backend == "chgnet":
            from chgnet.model import CHGNet
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(CHGNet.load(verbose=False), use_device=device)
        if backend == "sevennet":
            from sevenn.calculator import SevenNetCalculator

            return SevenNetCalculator(model_path or "7net-0", device=device)
        if backend == "mace":
            if not model_path:
                raise ValueError("the mace back end needs model_path (a local .model file); "
                                 "hub models cannot be downloaded here")
            from mace.calculators import MACECalculator

            return MACECalculator(model_paths=model_path, device=device, default_dtype="float64")
    raise ValueError(f"unknown MLIP back end {backend!r}; choose chgnet, sevennet or mace")


def calculator_for(config: MLIPConfig):
    return load_calculator(config.backend, config.model_path, config.device)


#: Decorates whatever runs the MLIP: numpy's BLAS on one thread. A relaxation alternates torch
#: (an OpenMP pool) with numpy/scipy on 3x3 matrices (the cell filter's logm, ASE); the two
#: pools spin-wait on the same cores, which made relaxations ~2x slower on 2 cores.
single_threaded_blas = threadpool_limits.wrap(limits=1, user_api="blas")


def _check_energy(energy: float, n_atoms: int, config: MLIPConfig) -> None:
    if not math.isfinite(energy):
        raise MLIPError(f"non-finite energy {energy}")
    if abs(energy / n_atoms) > config.max_energy_per_atom:
        raise MLIPError(f"exploded: |E|/atom = {abs(energy / n_atoms):.1f} eV")


@dataclass
class _Run:
    """One structure's relaxation inside a lockstep batch."""

    atoms: object  # ase.Atoms
    optimizer: object | None = None  # FIRE over the atoms or their cell filter
    initial_volume: float = 0.0
    result: RelaxResult = field(default_factory=RelaxResult)

    def fail(self, exc: Exception) -> None:
        self.result.error = self.result.error or f"{type(exc).__name__}: {exc}"


def relax(structure: Structure, config: MLIPConfig, calculator=None) -> RelaxResult:
    """Relax one structure (FIRE, cell through ``FrechetCellFilter``); never raises."""
    return relax_many([structure], config, calculator)[0]


@single_threaded_blas
def relax_many(structures: Sequence[Structure | None], config: MLIPConfig, calculator=None) -> list[RelaxResult]:
    """Relax a batch in lockstep; ``None`` entries (unparsed samples) get an error result.

    Every FIRE step evaluates all unfinished structures together, in one model call for CHGNet
    (``batch_size`` structures per forward), then each structure takes its own optimizer step.
    One structure's failure (NaN, explosion, timeout, a graph that cannot be built) is recorded
    on it and the others go on. Its ``seconds`` are its own work plus its share (by atoms) of
    the batched model calls; the timeout applies to those.
    """
    runs = [_start(structure, config) for structure in structures]
    active = [run for run in runs if run.result.error is None]
    if active and calculator is None:
        try:
            calculator = calculator_for(config)
        except Exception as exc:
            for run in active:
                run.fail(exc)
            active = []
    _evaluate(active, calculator, config)
    for run in active:
        _guarded(run, lambda r: _begin(r, config))
    active = [run for run in active if run.result.error is None]
    while active:
        for run in active:
            _guarded(run, lambda r: _advance(r, config))
        active = [run for run in active if run.result.error is None and run.result.energy is None]
        _evaluate(active, calculator, config)
        active = [run for run in active if run.result.error is None]
    return [run.result for run in runs]


def _start(structure: Structure | None, config: MLIPConfig) -> _Run:
    if structure is None:
        return _Run(None, result=RelaxResult(error="no structure"))
    run = _Run(None)
    try:
        if len(structure) > config.max_atoms:
            raise MLIPError(f"{len(structure)} atoms > max_atoms={config.max_atoms}")
        if not np.isfinite(structure.lattice.matrix).all() or structure.volume < 1e-3:
            raise MLIPError("degenerate cell (non-finite lattice or zero volume)")
        if not np.isfinite(structure.frac_coords).all():
            raise MLIPError("non-finite atomic coordinates")
        run.atoms = AseAtomsAdaptor.get_atoms(structure)
        run.initial_volume = run.atoms.get_volume()
    except Exception as exc:
        run.fail(exc)
    return run


def _guarded(run: _Run, action):
    """``action(run)``, its time charged to the run; a failure is recorded on the run (None)."""
    start = time.perf_counter()
    value = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = action(run)
    except Exception as exc:  # one bad structure is recorded; the batch goes on
        run.fail(exc)
    run.result.seconds += time.perf_counter() - start
    return value


def _begin(run: _Run, config: MLIPConfig) -> None:
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    run.result.initial_energy = float(run.atoms.get_potential_energy())
    _check_energy(run.result.initial_energy, len(run.atoms), config)
    run.optimizer = FIRE(FrechetCellFilter(run.atoms) if config.relax_cell else run.atoms, logfile=None)
    run.optimizer.fmax = config.fmax


def _advance(run: _Run, config: MLIPConfig) -> None:
    """Finish the run (converged, or out of steps) or take one FIRE step, as ``FIRE.run`` does."""
    optimizer = run.optimizer
    if optimizer.nsteps >= config.max_steps or optimizer.gradient_converged(optimizer.optimizable.get_gradient()):
        _finish(run, config)
        return
    optimizer.step()
    optimizer.nsteps += 1
    if run.result.seconds > config.timeout_s:
        raise MLIPError(f"timeout after {config.timeout_s:.0f} s")
    ratio = run.atoms.get_volume() / run.initial_volume
    if not (1 / config.max_volume_change < ratio < config.max_volume_change):
        raise MLIPError(f"exploded: volume changed {ratio:.2f}x")


def _finish(run: _Run, config: MLIPConfig) -> None:
    result, atoms = run.result, run.atoms
    energy = float(atoms.get_potential_energy())
    _check_energy(energy, len(atoms), config)
    result.steps = run.optimizer.nsteps
    result.energy, result.energy_per_atom = energy, energy / len(atoms)
    relaxed = AseAtomsAdaptor.get_structure(atoms)  # plain sites: no site properties carried over
    result.structure = Structure(relaxed.lattice, relaxed.species, relaxed.frac_coords)


def _evaluate(runs: list[_Run], calculator, config: MLIPConfig) -> None:
    """Energy, forces and stress of each run's current atoms, stored on the atoms (a
    ``SinglePointCalculator``) for the cell filter and FIRE to read."""
    from ase.calculators.singlepoint import SinglePointCalculator

    for run in runs:
        if run.result.error is None:
            _guarded(run, lambda r: _check_crowding(r.atoms, config))
    runs = [run for run in runs if run.result.error is None]
    if not runs:
        return
    if hasattr(calculator, "model") and hasattr(calculator.model, "predict_graph"):  # CHGNet
        predictions = _chgnet_batch(runs, calculator, config)
    else:
        predictions = {id(run): _guarded(run, lambda r: _single_point(r.atoms, calculator)) for run in runs}
    for run in runs:
        if predictions.get(id(run)) is None:
            continue
        energy, forces, stress = predictions[id(run)]
        if not (math.isfinite(energy) and np.isfinite(forces).all()):
            run.fail(MLIPError(f"non-finite energy or forces (E = {energy})"))
            continue
        run.atoms.calc = SinglePointCalculator(
            run.atoms, energy=energy, free_energy=energy, forces=forces, stress=stress
        )


def _check_crowding(atoms, config: MLIPConfig) -> None:
    """Refuse a cell too dense for the model's graph, before every model call: a cell can pass
    at the start and collapse under FIRE (a compare run was killed at 15 GB in CHGNet's bond
    convolution mid-relaxation)."""
    from ase.neighborlist import neighbor_list

    centers = neighbor_list("i", atoms, DENSE_RADIUS)
    crowded = int(np.bincount(centers).max()) if len(centers) else 0
    if crowded > config.max_neighbors:
        raise MLIPError(
            f"too dense to relax: {crowded} atoms within {DENSE_RADIUS:g} Å of one atom "
            f"(max_neighbors={config.max_neighbors})"
        )


def _single_point(atoms, calculator) -> tuple[float, np.ndarray, np.ndarray]:
    atoms.calc = calculator
    return float(atoms.get_potential_energy()), atoms.get_forces(), atoms.get_stress()


def _chgnet_batch(runs: list[_Run], calculator, config: MLIPConfig) -> dict[int, tuple]:
    """CHGNet forwards over all runs (converted as ``CHGNetCalculator`` does), each holding at most
    ``config.batch_size`` structures and ``config.max_graph_edges`` graph edges; if a forward
    fails, each of its structures is tried alone."""
    model = calculator.model
    graphs = {id(run): _guarded(run, lambda r: _graph_within_budget(model, r.atoms, config)) for run in runs}
    predictions = {}
    for batch in _edge_bounded_batches([run for run in runs if graphs[id(run)] is not None], graphs, config):
        predictions.update(_predict_batch(batch, [graphs[id(r)] for r in batch], model))
    out = {}
    for run in runs:
        if (p := predictions.get(id(run))) is not None:
            energy = float(p["e"]) * (len(run.atoms) if model.is_intensive else 1)
            out[id(run)] = (energy, p["f"], full_3x3_to_voigt_6_stress(p["s"] * calculator.stress_weight))
    return out


def _graph_edges(graph) -> int:
    return len(graph.atom_graph) + len(graph.bond_graph)


def _graph_within_budget(model, atoms, config: MLIPConfig):
    graph = model.graph_converter(AseAtomsAdaptor.get_structure(atoms))
    if (edges := _graph_edges(graph)) > config.max_graph_edges:
        raise MLIPError(f"graph too large to relax: {edges} bonds and angles (max_graph_edges={config.max_graph_edges})")
    return graph


def _edge_bounded_batches(runs: list[_Run], graphs: dict, config: MLIPConfig) -> list[list[_Run]]:
    """Consecutive runs grouped so that no forward exceeds the structure or edge budget."""
    batches, edges = [[]], 0
    for run in runs:
        size = _graph_edges(graphs[id(run)])
        if batches[-1] and (edges + size > config.max_graph_edges or len(batches[-1]) == config.batch_size):
            batches.append([])
            edges = 0
        batches[-1].append(run)
        edges += size
    return batches if batches[0] else []


def _predict_batch(runs: list[_Run], graphs: list, model) -> dict[int, dict]:
    """One forward; its time is shared among the runs by atoms."""
    start = time.perf_counter()
    try:
        outputs = model.predict_graph(graphs, task="efs", batch_size=len(graphs))
    except Exception:  # the forward failed: each structure alone, so only the culprit fails
        return {id(run): _guarded(run, lambda r: model.predict_graph(graph, task="efs"))
                for run, graph in zip(runs, graphs)}
    shared = time.perf_counter() - start
    total_atoms = sum(len(r.atoms) for r in runs)
    for run in runs:
        run.result.seconds += shared * len(run.atoms) / total_atoms
    return dict(zip(map(id, runs), [outputs] if len(runs) == 1 else outputs))
