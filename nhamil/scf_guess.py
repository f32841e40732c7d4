"""Predicted Fock matrices as SCF start guesses, against PySCF's own guesses.

The density of a predicted full Fock matrix, P = 2 C_occ C_occ^T, with C = S^-1/2 C_orth for a
Löwdin-orthogonal one (``fock_orthogonal`` target) or from ``F C = S C E`` for an AO one
(``fock``), is handed to PySCF as ``dm0`` (in PySCF's AO order); the model's level of theory
(method, functional, basis, charge, spin) must be the SCF's;
PySCF's guesses ("minao", its default, "atom", "huckel", "1e", ...) are run by name. Each run
counts SCF cycles (one per callback) and wall time (s) to convergence at the same settings.
The guess density, like the Fock matrix, rotates as ``P(R x) = D P(x) D^T``; cycle counts
are invariant up to round-off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import ase
import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InputError
from .evaluate.electronic import density_matrix, orbitals_of, to_pyscf_order
from .inference import Predictor
from .model import HamiltonianModel
from .orbitals import AtomicBasis, pyscf_to_canonical
from .reference import ScfSettings
from .reference.scf import build_molecule, make_solver, overlap_matrix

#: The name under which the model's guess appears next to PySCF's guesses.
MODEL_GUESS = "nhamil"


@dataclass(frozen=True)
class ScfRun:
    """One SCF from one guess: cycles to convergence, ``scf_seconds`` in PySCF's kernel,
    ``guess_seconds`` spent making a predicted guess (0 for PySCF's own, which it makes inside
    the kernel), final energy ``e_tot`` (Hartree)."""

    guess: str
    n_cycles: int
    scf_seconds: float
    guess_seconds: float
    e_tot: float
    converged: bool

    @property
    def total_seconds(self) -> float:
        return self.scf_seconds + self.guess_seconds


def predicted_density(model: HamiltonianModel, atoms: ase.Atoms, settings: ScfSettings) -> np.ndarray:
    """(n_ao, n_ao) closed-shell density of the model's Fock prediction, PySCF AO order, for
    ``atoms`` (Å); the overlap comes from PySCF's integrals (no SCF). Refuses a model that is not
    a full Fock model, or of another level of theory than ``settings``, naming both."""
    _check_model(model, settings)
    model.check_inputs([atoms], settings.basis)
    n_occupied = (int(atoms.numbers.sum()) - settings.charge) // 2
    baselines = model.baselines([atoms])  # with its overlap: PySCF builds the molecule once
    overlap = overlap_matrix(atoms, settings) if baselines is None else baselines.overlaps[0]
    fock = model.predict([atoms], baselines=baselines)[0].numpy()
    orbitals = orbitals_of(fock, overlap, n_occupied, model.target.orthogonal)
    basis = AtomicBasis.from_pyscf(settings.basis, atoms.numbers)
    return to_pyscf_order(density_matrix(orbitals), basis, atoms.numbers)


def initial_density(model: HamiltonianModel | Predictor, mol, solver=None) -> np.ndarray:
    """(n_ao, n_ao) closed-shell start density for an SCF of the PySCF ``Mole`` ``mol``, in
    PySCF's AO order: ``mf.kernel(dm0=initial_density(model, mol))``. The model's Fock
    prediction for ``mol``'s geometry is diagonalized with ``mol``'s own overlap and its
    ``mol.nelectron // 2`` lowest orbitals doubly occupied. ``model``: a fitted full Fock model,
    or a :class:`~nhamil.inference.Predictor` of it for ``mol``'s composition (built once, the
    fast way to start many SCFs of one molecule). The guess may come from another level of
    theory than the SCF's (an RHF model for a hybrid functional); the basis must be the model's.
    ``solver``: the PySCF SCF object of ``mol`` that the density will start; a model with the
    ``"minao"`` baseline then builds F[D_minao] with the solver's grid and density fitting,
    which the SCF reuses (one Fock build instead of a grid and fit of its own; see
    :meth:`~nhamil.reference.baseline.Baseline.of_solver`), if the solver is at the model's level.
    ``InputError`` (one line) for an open shell, another basis, a solver of another molecule, or
    a model that is not a full Fock model. Law: ``P(R x) = D P(x) D^T``."""
    predictor = model if isinstance(model, Predictor) else Predictor(model, mol.atom_charges())
    fitted = predictor.model
    fitted.target.check_full_fock("a start guess")
    if mol.spin != 0 or mol.nelectron % 2:
        raise InputError(
            f"initial_density: the molecule has spin {mol.spin} and {mol.nelectron} electrons; "
            "a closed shell (spin 0, even electron count) is needed"
        )
    basis_name = mol.basis.lower() if isinstance(mol.basis, str) else None
    if basis_name != fitted.basis.name:
        raise InputError(
            f"initial_density: the molecule's basis {mol.basis!r} is not the model's {fitted.basis.name!r}; "
            "build the Mole with the model's basis"
        )
    numbers = mol.atom_charges()
    if not np.array_equal(numbers, predictor.numbers):
        raise InputError(
            f"initial_density: the predictor is for atomic numbers {predictor.numbers.tolist()}, the molecule "
            f"has {numbers.tolist()}; build a Predictor for this molecule"
        )
    if solver is not None and solver.mol is not mol:
        raise InputError("initial_density: the solver is for another Mole; pass the solver of this molecule")
    stage = fitted.baseline_stage()
    shared = None if solver is None or stage is None else stage.of_solver(solver)
    fock = predictor.predict(mol.atom_coords(unit="Angstrom"), baseline=shared is None).to("cpu")
    if shared is not None:
        fock = fock.double() + torch.as_tensor(shared)
    order = pyscf_to_canonical(fitted.basis, numbers)
    overlap = mol.intor("int1e_ovlp")[np.ix_(order, order)]
    orbitals = orbitals_of(fock.double().numpy(), overlap, mol.nelectron // 2, fitted.target.orthogonal)
    return to_pyscf_order(density_matrix(orbitals), fitted.basis, numbers)


def _check_model(model: HamiltonianModel, settings: ScfSettings) -> None:
    """A start guess needs a full Fock model of the SCF's own level of theory."""
    model.target.check_full_fock("a start guess")
    model.target.check_level_of_theory(settings, "the SCF")


def run_from_guess(
    atoms: ase.Atoms,
    settings: ScfSettings,
    guess: str | np.ndarray,
    name: str | None = None,
    guess_seconds: float = 0.0,
) -> ScfRun:
    """Converge ``atoms`` (Å) at ``settings`` from a PySCF guess name or a density (PySCF AO
    order), counting cycles with a callback."""
    return _converge(make_solver(build_molecule(atoms, settings), settings), guess, name, guess_seconds)


def _converge(solver, guess: str | np.ndarray, name: str | None, guess_seconds: float) -> ScfRun:
    """Run the PySCF ``solver`` from a guess name or a density, counting cycles with a callback."""
    cycles = []
    solver.callback = lambda envs: cycles.append(envs["cycle"])
    start = time.perf_counter()
    if isinstance(guess, str):
        solver.init_guess = guess
        e_tot = solver.kernel()
    else:
        e_tot = solver.kernel(dm0=guess)
    return ScfRun(
        name or str(guess),
        len(cycles),
        time.perf_counter() - start,
        guess_seconds,
        float(e_tot),
        bool(solver.converged),
    )


def model_guess_run(
    model: HamiltonianModel, atoms: ase.Atoms, settings: ScfSettings, predictor: Predictor | None = None
) -> ScfRun:
    """SCF from the model's density (:func:`initial_density`, through ``predictor`` if given: a
    :class:`~nhamil.inference.Predictor` of ``atoms``' composition); the guess time covers
    features, heads, assembly, the baseline if any, overlap and diagonalization. A ``"minao"``
    baseline is built with the SCF's own solver, whose grid and density fitting the SCF reuses,
    so their one-time cost moves from the SCF's time into the guess time."""
    start = time.perf_counter()
    solver = make_solver(build_molecule(atoms, settings), settings)
    density = initial_density(predictor or model, solver.mol, solver)
    return _converge(solver, density, MODEL_GUESS, time.perf_counter() - start)


def compare_guesses(
    model: HamiltonianModel,
    frames: Sequence[ase.Atoms],
    settings: ScfSettings,
    guesses: Sequence[str] = ("minao", "atom", "huckel", "1e"),
    progress: bool = True,
    same_level: bool = True,
) -> list[ScfRun]:
    """SCF runs of every frame from the model's guess and from each PySCF guess, in order
    (frame-major). A composition shared by several frames (the geometries of one molecule) gets
    one :class:`~nhamil.inference.Predictor`, built before the first run, whose set-up is in no
    run's time; a composition seen once (a library of different molecules) is predicted by the
    model itself, so that its guess time is the whole cost. Refuses unknown elements, a basis other
    than the model's and, with ``same_level``, another level of theory, before any work (without it an
    RHF model may start a hybrid-functional SCF)."""
    if same_level:
        _check_model(model, settings)
    model.check_inputs(frames, settings.basis)
    compositions = Counter(tuple(atoms.numbers.tolist()) for atoms in frames)
    predictors = {composition: Predictor(model, composition) for composition, n in compositions.items() if n > 1}
    runs = []
    for atoms in tqdm(frames, desc="SCF guesses", unit="structure", disable=not progress):
        predictor = predictors.get(tuple(atoms.numbers.tolist()))
        runs.append(model_guess_run(model, atoms, settings, predictor))
        runs.extend(run_from_guess(atoms, settings, guess) for guess in guesses)
    return runs


def summarize_runs(runs: Sequence[ScfRun]) -> dict[str, dict]:
    """Per guess: mean, median, min and max cycles, a histogram of cycle counts, mean SCF and
    total seconds, median total seconds (the mean carries the first prediction's one-time set-up),
    and how many converged."""
    summary = {}
    for name in dict.fromkeys(run.guess for run in runs):
        chosen = [run for run in runs if run.guess == name]
        cycles = np.array([run.n_cycles for run in chosen])
        counts = dict(zip(*np.unique(cycles, return_counts=True), strict=True))
        summary[name] = {
            "n": len(chosen),
            "converged": sum(run.converged for run in chosen),
            "cycles_mean": float(cycles.mean()),
            "cycles_median": float(np.median(cycles)),
            "cycles_min": int(cycles.min()),
            "cycles_max": int(cycles.max()),
            "cycles_histogram": {int(k): int(v) for k, v in counts.items()},
            "scf_seconds_mean": float(np.mean([run.scf_seconds for run in chosen])),
            "total_seconds_mean": float(np.mean([run.total_seconds for run in chosen])),
            "total_seconds_median": float(np.median([run.total_seconds for run in chosen])),
        }
    return summary


def runs_as_rows(runs: Sequence[ScfRun]) -> list[dict]:
    """Plain dicts (JSON-ready) of every run, with ``total_seconds``."""
    return [{**asdict(run), "total_seconds": run.total_seconds} for run in runs]
