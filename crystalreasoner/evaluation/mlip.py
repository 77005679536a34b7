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


@single_threaded_blas
def relax(structure: Structure, config: MLIPConfig, calculator=None) -> RelaxResult:
    """Relax one structure (FIRE, cell through ``FrechetCellFilter``); never raises."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import FIRE

    start = time.perf_counter()
    result = RelaxResult()
    try:
        if len(structure) > config.max_atoms:
            raise MLIPError(f"{len(structure)} atoms > max_atoms={config.max_atoms}")
        if not np.isfinite(structure.lattice.matrix).all() or structure.volume < 1e-3:
            raise MLIPError("degenerate cell (non-finite lattice or zero volume)")
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.calc = calculator or calculator_for(config)
        initial_volume = atoms.get_volume()
        result.initial_energy = float(atoms.get_potential_energy())
        _check_energy(result.initial_energy, len(atoms), config)
        if config.max_steps > 0:
            target = FrechetCellFilter(atoms) if config.relax_cell else atoms
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optimizer = FIRE(target, logfile=None)

                def watchdog() -> None:
                    if time.perf_counter() - start > config.timeout_s:
                        raise MLIPError(f"timeout after {config.timeout_s:.0f} s")
                    ratio = atoms.get_volume() / initial_volume
                    if not (1 / config.max_volume_change < ratio < config.max_volume_change):
                        raise MLIPError(f"exploded: volume changed {ratio:.2f}x")

                optimizer.attach(watchdog)
                optimizer.run(fmax=config.fmax, steps=config.max_steps)
            result.steps = optimizer.nsteps
        energy = float(atoms.get_potential_energy())
        _check_energy(energy, len(atoms), config)
        result.energy, result.energy_per_atom = energy, energy / len(atoms)
        relaxed = AseAtomsAdaptor.get_structure(atoms)  # carries the calculator's float32 magmoms
        result.structure = Structure(relaxed.lattice, relaxed.species, relaxed.frac_coords)
    except Exception as exc:  # one bad structure is recorded; the batch goes on
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    return result


def relax_many(structures: Sequence[Structure | None], config: MLIPConfig) -> list[RelaxResult]:
    """Relax each structure; ``None`` entries (unparsed samples) get an error result."""
    calculator = None
    results = []
    for structure in structures:
        if structure is None:
            results.append(RelaxResult(error="no structure"))
            continue
        if calculator is None:
            try:
                calculator = calculator_for(config)
            except Exception as exc:
                results.append(RelaxResult(error=f"{type(exc).__name__}: {exc}"))
                continue
        results.append(relax(structure, config, calculator))
    return results
