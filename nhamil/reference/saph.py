"""The symmetry-adapted projected Hamiltonian (SAPH) of Nigam, Willatt and Ceriotti (2022).

The full-basis orbitals (core dropped) are projected onto a minimal basis picked from the full
one; of the lowest candidates, the first ``n_min`` linearly independent projections are kept,
and the SAPH is the orthogonal minimal-basis matrix whose eigenpairs are the kept orbital
energies and the orthogonalized projections (the orthogonal polar factor of the projections).

Symmetry law: for a proper or improper rotation R of the positions,
``SAPH(R x) = D_min SAPH(x) D_min^T`` with ``D_min = basis_wigner(minimal_basis, numbers, R)``.
The SAPH does not depend on the sign of any orbital, nor on the choice of orbitals inside a
degenerate level that is kept whole.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from nhamil.orbitals import AtomicBasis
from nhamil.reference.scf import ScfResult
from nhamil.reference.settings import ProjectionSettings


def overlap_power(overlap: np.ndarray, power: float) -> np.ndarray:
    """(n, n) S^power of a symmetric positive definite overlap matrix (n, n), e.g. S^-1/2."""
    values, vectors = np.linalg.eigh(overlap)
    return (vectors * values**power) @ vectors.T


def lowdin_orthogonalize(fock: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """(n, n) ``S^-1/2 F S^-1/2`` of a Fock (Hartree) and overlap matrix (n, n); its eigenvalues
    are the orbital energies. Transforms like F under rotations (``D`` is orthogonal)."""
    inverse_sqrt = overlap_power(overlap, -0.5)
    return inverse_sqrt @ fock @ inverse_sqrt


def subset_ao_indices(basis: AtomicBasis, subset: AtomicBasis, numbers) -> np.ndarray:
    """(n_ao_subset,) canonical AO indices, in ``basis``, of the shells of ``subset``."""
    indices = []
    for start, z in zip(basis.atom_offsets(numbers)[:-1].tolist(), np.asarray(numbers).tolist(), strict=True):
        offsets = basis.shell_offsets(z)
        for shell in subset.shells[int(z)]:
            indices.extend(range(start + offsets[shell], start + offsets[shell] + shell.size))
    return np.asarray(indices, dtype=np.int64)


def independent_columns(vectors: np.ndarray, n_keep: int, threshold: float) -> np.ndarray:
    """Indices of the first ``n_keep`` columns of ``vectors`` (d, k) that are linearly
    independent of the columns kept before them (Gram-Schmidt residual norm > ``threshold``)."""
    basis = np.zeros((vectors.shape[0], 0))
    kept = []
    for k in range(vectors.shape[1]):
        residual = vectors[:, k] - basis @ (basis.T @ vectors[:, k])
        norm = np.linalg.norm(residual)
        if norm > threshold:
            basis = np.column_stack([basis, residual / norm])
            kept.append(k)
        if len(kept) == n_keep:
            return np.asarray(kept, dtype=np.int64)
    raise ValueError(
        f"only {len(kept)} of {vectors.shape[1]} candidate orbitals project independently onto "
        f"the {n_keep} minimal-basis functions: raise extra_candidates or lower the threshold"
    )


def n_core_orbitals(numbers, projection: ProjectionSettings) -> int:
    """Number of core orbitals dropped for a structure of atomic numbers ``numbers``."""
    return sum(projection.n_core(z) for z in np.asarray(numbers).tolist())


def projected_valence_hamiltonian(
    scf_result: ScfResult, numbers, basis: AtomicBasis, projection: ProjectionSettings
) -> tuple[np.ndarray, np.ndarray, AtomicBasis]:
    """SAPH of one structure.

    ``scf_result`` holds canonical-order matrices in the full ``basis``. Returns ``saph``
    (n_min, n_min) in Hartree, orthogonal minimal basis in canonical order; ``energies`` (n_min,)
    the kept orbital energies in Hartree, ascending (the eigenvalues of ``saph``); and the
    ``minimal_basis``. Raises ``ValueError`` naming an element the projection does not cover.
    """
    projection.check_elements(numbers)
    minimal_basis = projection.minimal_basis(basis)
    minimal = subset_ao_indices(basis, minimal_basis, numbers)
    start = n_core_orbitals(numbers, projection)
    candidates = np.arange(start, min(start + len(minimal) + projection.extra_candidates, len(scf_result.mo_energy)))
    projections = scf_result.overlap[minimal] @ scf_result.mo_coeff[:, candidates]
    kept = independent_columns(projections, len(minimal), projection.threshold)
    u, _, vt = scipy.linalg.svd(projections[:, kept])
    rotation = u @ vt
    energies = scf_result.mo_energy[candidates[kept]]
    return (rotation * energies) @ rotation.T, energies, minimal_basis
