"""One damped Fock build from a prediction: F_beta = (1 - beta) F_pred + beta F[P(F_pred)].

A predicted full Fock matrix F_pred gives a closed-shell density P(F_pred) = 2 C_occ C_occ^T
(its lowest ``n_occupied`` orbitals; ``F C = S C E``, or C = S^-1/2 C_orth for a Löwdin-orthogonal
F). One Fock build at the references' level of theory, F[P(F_pred)], is one Roothaan step from
the prediction; mixed with the prediction by ``mixing`` beta in (0, 1] it damps that step
against the overshoot a plain Roothaan step (beta = 1) is prone to. beta may differ between the
on-site blocks (an atom's own orbitals, where the overshoot is largest) and the pair blocks
(:class:`Mixing`). The cost is one
J/K/XC build per molecule (about 0.6 s for ethanol at PBE/def2-SVP on two cores, an eighth of the
SCF), on top of the model, so numbers with it are reported apart from the model's own.

The build is :func:`nhamil.reference.fock_build.fock_of_density` (exactly equivariant on a DFT
grid), so F_beta keeps the prediction's symmetry law: ``F_beta(P R x) = P_ao D F_beta(x) D^T
P_ao^T`` for proper and improper rotations R and atom permutations P. Matrices are float64,
Hartree, canonical AO order, in the target's own form (AO, or Löwdin-orthogonal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..orbitals import AtomicBasis
from ..reference import ScfSettings, lowdin_orthogonalize
from ..reference.fock_build import fock_of_density
from .electronic import density_matrix, orbitals_of


def check_mixing(mixing: float, name: str = "refinement mixing", allow_zero: bool = False) -> None:
    """Raise ``InputError`` naming ``name`` unless 0 < mixing <= 1 (0 <= mixing with
    ``allow_zero``), a finite number."""
    low_ok = mixing >= 0.0 if allow_zero else mixing > 0.0
    if not (np.isfinite(mixing) and low_ok and mixing <= 1.0):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise InputError(f"{name} {mixing!r} must lie in {interval}; 1 is a plain Roothaan step")


@dataclass(frozen=True)
class Mixing:
    """The weights beta of F[P(F)]: ``pairs`` in (0, 1] for the blocks of two different atoms and
    ``onsite`` in [0, 1] for each atom's own block (None: ``pairs``). Both block families map to
    themselves under rotations and atom permutations, so a mixing per family keeps the law."""

    pairs: float
    onsite: float | None = None

    def __post_init__(self) -> None:
        check_mixing(self.pairs)
        if self.onsite is not None:
            check_mixing(self.onsite, "on-site refinement mixing", allow_zero=True)

    def weights(self, basis: AtomicBasis, numbers) -> np.ndarray:
        """(n_ao, n_ao) beta of each matrix element of a structure of atoms ``numbers`` in ``basis``."""
        offsets = basis.atom_offsets(numbers)
        atom_of_ao = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        onsite = self.pairs if self.onsite is None else self.onsite
        return np.where(atom_of_ao[:, None] == atom_of_ao[None, :], onsite, self.pairs)


def check_refinable(model) -> None:
    """Raise ``InputError`` naming the problem unless ``model`` (a fitted
    :class:`~nhamil.model.HamiltonianModel`) predicts a full Fock matrix."""
    model.target.check_full_fock("refinement")


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


def mixed(
    predicted: Sequence[np.ndarray],
    rebuilt: Sequence[np.ndarray],
    mixing: Mixing,
    basis: AtomicBasis,
    numbers: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """F_beta = (1 - beta) F + beta F[P(F)], elementwise with beta from ``mixing`` per block
    family, for each prediction F (n, n) and its rebuilt F[P(F)] of a structure of atoms
    ``numbers`` (canonical AO order of ``basis``)."""
    steps = zip(predicted, rebuilt, numbers, strict=True)
    return [fock + mixing.weights(basis, z) * (built - fock) for fock, built, z in steps]
