"""From a predicted matrix to chemistry: orbitals, frontier levels, density matrix, dipole.

All matrices are float64 in nhamil's canonical AO order (``nhamil.orbitals``); energies in
Hartree, dipoles in Debye. Closed shells only (every occupied orbital holds two electrons).

Symmetry law: orbital energies, HOMO, LUMO and gap are invariant under rotations, inversion
and atom permutations; the density transforms like the Fock matrix, ``P(R x) = D P(x) D^T``;
the dipole like a vector, ``mu(R x) = R mu(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np
import scipy.linalg

from ..orbitals import AtomicBasis, pyscf_to_canonical
from ..reference import ScfSettings
from ..reference.saph import overlap_power
from ..reference.scf import build_molecule
from ..reference.scf import overlap_matrix as overlap_matrix  # the one AO overlap, re-exported


@dataclass(frozen=True)
class Orbitals:
    """Solution of ``F C = S C diag(energies)``: energies (n_mo,) Hartree ascending;
    coefficients (n_ao, n_mo), columns S-orthonormal; n_occupied doubly occupied orbitals."""

    energies: np.ndarray
    coefficients: np.ndarray
    n_occupied: int

    @property
    def homo(self) -> float:
        return float(self.energies[self.n_occupied - 1])

    @property
    def lumo(self) -> float:
        if self.n_occupied >= len(self.energies):
            raise ValueError(f"no empty orbital: all {len(self.energies)} are occupied")
        return float(self.energies[self.n_occupied])

    @property
    def gap(self) -> float:
        """HOMO-LUMO gap, Hartree."""
        return self.lumo - self.homo

    @property
    def occupied(self) -> np.ndarray:
        """(n_ao, n_occupied) occupied orbital coefficients."""
        return self.coefficients[:, : self.n_occupied]


def solve_orbitals(fock: np.ndarray, n_occupied: int, overlap: np.ndarray | None = None) -> Orbitals:
    """Orbitals of a symmetric (n, n) ``fock`` (Hartree): the generalized problem with
    ``overlap`` (n, n) for a non-orthogonal basis, the plain one without."""
    if not 0 < n_occupied <= len(fock):
        raise ValueError(f"{n_occupied} occupied orbitals in a basis of {len(fock)} functions")
    energies, coefficients = scipy.linalg.eigh(fock, overlap)
    return Orbitals(energies, coefficients, int(n_occupied))


def ao_fock(orthogonal_fock: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """(n, n) AO-basis Fock F = S^1/2 F_orth S^1/2 of a Löwdin-orthogonal one (Hartree)."""
    sqrt = overlap_power(overlap, 0.5)
    return sqrt @ orthogonal_fock @ sqrt


def orbitals_from_orthogonal(orthogonal_fock: np.ndarray, overlap: np.ndarray, n_occupied: int) -> Orbitals:
    """AO orbitals of a Löwdin-orthogonal Fock: C = S^-1/2 C_orth (same energies)."""
    orthogonal = solve_orbitals(orthogonal_fock, n_occupied)
    return Orbitals(orthogonal.energies, overlap_power(overlap, -0.5) @ orthogonal.coefficients, orthogonal.n_occupied)


def orbitals_of(fock: np.ndarray, overlap: np.ndarray, n_occupied: int, orthogonal: bool) -> Orbitals:
    """AO orbitals of a predicted full Fock matrix (n, n), Hartree: Löwdin-orthogonal
    (``orthogonal``, :func:`orbitals_from_orthogonal`) or AO (generalized problem with ``overlap``)."""
    if orthogonal:
        return orbitals_from_orthogonal(fock, overlap, n_occupied)
    return solve_orbitals(fock, n_occupied, overlap)


def density_matrix(orbitals: Orbitals) -> np.ndarray:
    """(n_ao, n_ao) closed-shell one-particle density P = 2 C_occ C_occ^T; tr(P S) = 2 n_occ."""
    return 2.0 * orbitals.occupied @ orbitals.occupied.T


def to_pyscf_order(matrix: np.ndarray, basis: AtomicBasis, numbers) -> np.ndarray:
    """A canonical-order AO matrix (n_ao, n_ao) in PySCF's AO order (p shells (px, py, pz))."""
    inverse = np.argsort(pyscf_to_canonical(basis, numbers))
    return matrix[np.ix_(inverse, inverse)]


def dipole_moment(atoms: ase.Atoms, density: np.ndarray, settings: ScfSettings) -> np.ndarray:
    """(3,) dipole moment (Debye, origin at 0, nuclei included) of a canonical-order density
    of ``atoms`` (Å) in ``settings.basis``, from PySCF's dipole integrals."""
    from pyscf.scf import hf

    basis = AtomicBasis.from_pyscf(settings.basis, atoms.numbers)
    mol = build_molecule(atoms, settings)
    return np.asarray(hf.dip_moment(mol, to_pyscf_order(density, basis, atoms.numbers), unit="Debye", verbose=0))


def occupied_similarity(predicted: Orbitals, reference: Orbitals, overlap: np.ndarray) -> tuple[float, np.ndarray]:
    """How alike the occupied orbitals are, each in [0, 1], 1 for identical.

    Returns the subspace similarity ||C_ref^T S C_pred||_F^2 / n_occ (invariant to any rotation
    among the occupied orbitals, e.g. inside a degenerate level) and the (n_occ,) per-orbital
    |<ref_i|pred_i>| (sign-free, matched by index).
    """
    if predicted.n_occupied != reference.n_occupied:
        raise ValueError(f"{predicted.n_occupied} predicted and {reference.n_occupied} reference occupied orbitals")
    projection = reference.occupied.T @ overlap @ predicted.occupied
    return float((projection**2).sum() / reference.n_occupied), np.abs(np.diag(projection))


def coefficient_cosines(predicted: Orbitals, reference: Orbitals) -> np.ndarray:
    """(n_occ,) |cos| of the angle between each predicted and reference occupied coefficient
    vector, matched by index, in the plain Euclidean inner product of AO coefficients:
    |c_pred . c_ref| / (|c_pred| |c_ref|). This is QHNet's orbital similarity psi
    (divelab/AIRS, OpenDFT/QHNet/test_wH.py: ``torch.cosine_similarity(C_pred, C_ref, dim=1).abs()``
    over the occupied columns); like theirs, no special treatment of degenerate levels. Invariant
    under rotations and atom permutations (the AO Wigner matrices are orthogonal) and under each
    orbital's sign."""
    if predicted.n_occupied != reference.n_occupied:
        raise ValueError(f"{predicted.n_occupied} predicted and {reference.n_occupied} reference occupied orbitals")
    dots = np.abs(np.einsum("ai,ai->i", predicted.occupied, reference.occupied))
    return dots / (np.linalg.norm(predicted.occupied, axis=0) * np.linalg.norm(reference.occupied, axis=0))


def spurious_states(predicted: np.ndarray, reference: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Indices of predicted orbital energies (Hartree) more than ``margin`` Hartree outside the
    range [min, max] of the reference energies: "intruder" states with no counterpart."""
    outside = (predicted < reference.min() - margin) | (predicted > reference.max() + margin)
    return np.flatnonzero(outside)
