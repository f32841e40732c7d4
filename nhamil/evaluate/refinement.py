"""One damped Fock build from a prediction: F_beta = (1 - beta) F_pred + beta F[P(F_pred)].

A predicted full Fock matrix F_pred gives a closed-shell density P(F_pred) = 2 C_occ C_occ^T
(its lowest ``n_occupied`` orbitals; ``F C = S C E``, or C = S^-1/2 C_orth for a Löwdin-orthogonal
F). One Fock build at the references' level of theory, F[P(F_pred)], is one Roothaan step from
the prediction; mixed with the prediction by ``mixing`` beta in (0, 1] it damps that step
against the charge sloshing that a plain Roothaan step (beta = 1) is prone to. The cost is one
J/K/XC build per molecule (about 0.6 s for ethanol at PBE/def2-SVP on two cores, an eighth of the
SCF), on top of the model, so numbers with it are reported apart from the model's own.

The build is :func:`nhamil.reference.fock_build.fock_of_density` (exactly equivariant on a DFT
grid), so F_beta keeps the prediction's symmetry law: ``F_beta(P R x) = P_ao D F_beta(x) D^T
P_ao^T`` for proper and improper rotations R and atom permutations P. Matrices are float64,
Hartree, canonical AO order, in the target's own form (AO, or Löwdin-orthogonal).
"""

from __future__ import annotations

from collections.abc import Sequence

import ase
import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..orbitals import AtomicBasis
from ..reference import ScfSettings, lowdin_orthogonalize
from ..reference.fock_build import fock_of_density
from .electronic import density_matrix, orbitals_of


def check_mixing(mixing: float) -> None:
    """Raise ``InputError`` naming ``mixing`` unless 0 < mixing <= 1 (a finite number)."""
    if not (np.isfinite(mixing) and 0.0 < mixing <= 1.0):
        raise InputError(f"refinement mixing {mixing!r} must lie in (0, 1]; 1 is a plain Roothaan step")


def check_refinable(model, mixing: float) -> None:
    """Raise ``InputError`` naming the problem unless ``model`` (a fitted
    :class:`~nhamil.model.HamiltonianModel`) predicts a full Fock matrix and ``mixing`` is valid."""
    check_mixing(mixing)
    if not model.target.supports_start_guess:
        raise InputError(f"refinement needs a full Fock model ('fock_orthogonal' or 'fock'), not {model.target.name!r}")


def rebuilt_fock(
    fock: np.ndarray,
    atoms: ase.Atoms,
    overlap: np.ndarray,
    basis: AtomicBasis,
    scf: ScfSettings,
    orthogonal: bool,
) -> np.ndarray:
    """(n, n) F[P(F)] of a full Fock matrix ``fock`` (n, n) of ``atoms`` (Å), in ``fock``'s form
    (Löwdin-orthogonal if ``orthogonal``), at the level ``scf`` in ``basis``; ``overlap``: the
    (n, n) AO overlap, canonical order. The molecule must be a closed shell."""
    electrons = int(atoms.numbers.sum()) - scf.charge
    if electrons % 2 or scf.spin:
        raise InputError(f"refinement needs a closed shell; {atoms.get_chemical_formula()} has {electrons} electrons")
    density = density_matrix(orbitals_of(fock, overlap, electrons // 2, orthogonal))
    built = fock_of_density(atoms, basis, scf, density)
    return lowdin_orthogonalize(built, overlap) if orthogonal else built


def rebuilt_predictions(
    predicted: Sequence[np.ndarray],
    frames: Sequence[ase.Atoms],
    overlaps: Sequence[np.ndarray],
    basis: AtomicBasis,
    scf: ScfSettings,
    orthogonal: bool,
    progress: bool = True,
) -> list[np.ndarray]:
    """:func:`rebuilt_fock` of each predicted (n, n) full Fock matrix (Hartree, the target's
    form) of ``frames`` with their AO ``overlaps``, with a progress bar."""
    steps = list(zip(predicted, frames, overlaps, strict=True))
    return [
        rebuilt_fock(fock, atoms, overlap, basis, scf, orthogonal)
        for fock, atoms, overlap in tqdm(steps, desc="Fock builds", unit="structure", disable=not progress)
    ]


def mixed(predicted: Sequence[np.ndarray], rebuilt: Sequence[np.ndarray], mixing: float) -> list[np.ndarray]:
    """F_beta = (1 - beta) F + beta F[P(F)] for each prediction F and its rebuilt F[P(F)];
    beta = ``mixing`` in (0, 1]."""
    check_mixing(mixing)
    return [(1.0 - mixing) * fock + mixing * built for fock, built in zip(predicted, rebuilt, strict=True)]
