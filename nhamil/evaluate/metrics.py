"""Errors of predicted Hamiltonians: matrix elements and orbital energies.

Matrix errors are reported in µHa, orbital energies and gaps in meV (the occupied ones also in
µHa, the field's unit). Symmetry: every error here is invariant under atom permutations; under
rotations and inversion all are (eigenvalues, orbital similarities, RMSEs: Frobenius norms)
except the MAEs of matrix elements (entrywise L1 norms), which change slightly with the
orientation of the errors, as in every paper that reports them. Matrices of a non-orthogonal
target (the AO ``fock``) come with their (n, n) AO overlaps, ``overlaps``, and their orbital
energies are the generalized eigenvalues ``F C = S C E``.

Full Fock targets also get the field's metrics (:func:`fock_errors`: the AO Fock MAE and the
orbital similarity psi of SchNOrb, PhiSNet, QHNet), and every target the matrix MAE per block
family (:func:`target_errors`, the content of a run's ``metrics.json``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..targets import TargetSet, orbital_energies_of, target_kind
from ..units import HARTREE_TO_MEV, HARTREE_TO_MICROHARTREE
from .electronic import ao_fock, coefficient_cosines, occupied_similarity, orbitals_of
from .physics import block_type_errors


def orbital_energies(matrices: Sequence[np.ndarray], overlaps: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Ascending eigenvalues (Hartree) of each symmetric matrix: plain for an orthogonal basis,
    generalized with each structure's AO overlap if ``overlaps`` are given."""
    return [orbital_energies_of(m, None if overlaps is None else overlaps[k]) for k, m in enumerate(matrices)]


def hamiltonian_errors(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict[str, float]:
    """MAE and RMSE over all matrix elements, µHa."""
    difference = np.concatenate(
        [(np.asarray(p) - np.asarray(r)).ravel() for p, r in zip(predicted, reference, strict=True)]
    )
    return {
        "hamiltonian_mae_uha": float(np.abs(difference).mean() * HARTREE_TO_MICROHARTREE),
        "hamiltonian_rmse_uha": float(np.sqrt((difference**2).mean()) * HARTREE_TO_MICROHARTREE),
    }


def eigenvalue_errors(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    overlaps: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """Orbital-energy MAE and RMSE (meV) over occupied and over all states, the occupied MAE also
    in µHa (QHNet's "epsilon"), and HOMO-LUMO gap MAE (meV). ``n_occupied`` (per structure)
    counts the occupied states of each matrix; ``overlaps``: AO overlaps of a non-orthogonal target."""
    eig_pred, eig_ref = orbital_energies(predicted, overlaps), orbital_energies(reference, overlaps)
    occupied = np.concatenate([p[:n] - r[:n] for p, r, n in zip(eig_pred, eig_ref, n_occupied, strict=True)])
    every = np.concatenate([p - r for p, r in zip(eig_pred, eig_ref, strict=True)])
    gaps = np.array([_gap(p, n) - _gap(r, n) for p, r, n in zip(eig_pred, eig_ref, n_occupied, strict=True)])
    return {
        "occupied_energy_mae_mev": float(np.abs(occupied).mean() * HARTREE_TO_MEV),
        "occupied_energy_rmse_mev": float(np.sqrt((occupied**2).mean()) * HARTREE_TO_MEV),
        "occupied_energy_mae_uha": float(np.abs(occupied).mean() * HARTREE_TO_MICROHARTREE),
        "energy_mae_mev": float(np.abs(every).mean() * HARTREE_TO_MEV),
        "energy_rmse_mev": float(np.sqrt((every**2).mean()) * HARTREE_TO_MEV),
        "gap_mae_mev": float(np.abs(gaps).mean() * HARTREE_TO_MEV),
    }


def _gap(energies: np.ndarray, n_occupied: int) -> float:
    if not 0 < n_occupied < len(energies):
        raise ValueError(f"a HOMO-LUMO gap needs occupied and empty states, got {n_occupied} of {len(energies)}")
    return float(energies[n_occupied] - energies[n_occupied - 1])


def prediction_errors(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    overlaps: Sequence[np.ndarray] | None = None,
) -> dict[str, float]:
    """All the errors above in one flat dict (the content of ``metrics.json``); ``overlaps``:
    AO overlaps of a non-orthogonal target, one per structure."""
    if len(predicted) != len(reference) or len(reference) != len(n_occupied):
        raise ValueError(f"got {len(predicted)} predictions, {len(reference)} references, {len(n_occupied)} counts")
    if overlaps is not None and len(overlaps) != len(reference):
        raise ValueError(f"got {len(overlaps)} overlaps for {len(reference)} references")
    return {**hamiltonian_errors(predicted, reference), **eigenvalue_errors(predicted, reference, n_occupied, overlaps)}


def errors_by_size(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    n_atoms: Sequence[int],
    overlaps: Sequence[np.ndarray] | None = None,
) -> dict[int, dict[str, float]]:
    """:func:`prediction_errors` of the structures of each size: number of atoms -> errors, with
    ``n_structures`` counting the structures of that size. Sizes in ascending order."""
    if len(n_atoms) != len(predicted):
        raise ValueError(f"got {len(n_atoms)} sizes for {len(predicted)} predictions")
    by_size = {}
    for size in sorted(set(int(n) for n in n_atoms)):
        chosen = [k for k, n in enumerate(n_atoms) if n == size]
        errors = prediction_errors(
            [predicted[k] for k in chosen],
            [reference[k] for k in chosen],
            [n_occupied[k] for k in chosen],
            None if overlaps is None else [overlaps[k] for k in chosen],
        )
        by_size[size] = {"n_structures": len(chosen), **errors}
    return by_size


def fock_errors(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    overlaps: Sequence[np.ndarray],
    orthogonal: bool,
) -> dict[str, float]:
    """The field's metrics of full Fock predictions (SchNOrb, PhiSNet, QHNet, QHFlow), so nhamil's
    numbers sit beside theirs.

    predicted, reference: (n, n) matrices in Hartree, Löwdin-orthogonal F_orth (``orthogonal``) or
    AO Fock F; overlaps: each structure's (n, n) AO overlap S; n_occupied: occupied orbitals each.

    - ``fock_ao_mae_uha`` / ``fock_ao_rmse_uha``: over all elements of the AO Fock matrix
      F = S^1/2 F_orth S^1/2 (of the learned F itself for the ``fock`` target), µHa.
    - ``orbital_similarity_pct``: QHNet's psi, in percent: the mean over all test structures and
      their occupied orbitals (matched by index, S-orthonormal, c^T S c = 1) of the Euclidean
      |cos| between predicted and reference AO coefficient vectors
      (:func:`~nhamil.evaluate.electronic.coefficient_cosines`; QHNet's own code, not S-weighted).
    - ``orbital_overlap_similarity_pct``: the same mean of |c_pred^T S c_ref|, the overlap of the
      two orbitals as functions (1 for identical); matched by index as QHNet's.
    - ``occupied_subspace_similarity_pct``: mean over structures of ||C_ref^T S C_pred||_F^2 / n_occ,
      free of any rotation among occupied orbitals (degenerate levels, near-crossings).

    All are invariant under atom permutations and, except the AO MAE (an entrywise L1 norm), under
    rotations and inversion of the molecule.
    """
    difference = np.concatenate(
        [
            (_ao_matrix(p, s, orthogonal) - _ao_matrix(r, s, orthogonal)).ravel()
            for p, r, s in zip(predicted, reference, overlaps, strict=True)
        ]
    )
    cosines, overlaps_of_orbitals, subspaces = [], [], []
    for p, r, s, n in zip(predicted, reference, overlaps, n_occupied, strict=True):
        guess, exact = orbitals_of(p, s, n, orthogonal), orbitals_of(r, s, n, orthogonal)
        subspace, per_orbital = occupied_similarity(guess, exact, s)
        cosines.append(coefficient_cosines(guess, exact))
        overlaps_of_orbitals.append(per_orbital)
        subspaces.append(subspace)
    return {
        "fock_ao_mae_uha": float(np.abs(difference).mean() * HARTREE_TO_MICROHARTREE),
        "fock_ao_rmse_uha": float(np.sqrt((difference**2).mean()) * HARTREE_TO_MICROHARTREE),
        "orbital_similarity_pct": float(np.concatenate(cosines).mean() * 100.0),
        "orbital_overlap_similarity_pct": float(np.concatenate(overlaps_of_orbitals).mean() * 100.0),
        "occupied_subspace_similarity_pct": float(np.mean(subspaces) * 100.0),
    }


def _ao_matrix(matrix: np.ndarray, overlap: np.ndarray, orthogonal: bool) -> np.ndarray:
    return ao_fock(matrix, overlap) if orthogonal else np.asarray(matrix)


def target_errors(
    predicted: Sequence[np.ndarray], targets: TargetSet, numbers: Sequence[np.ndarray]
) -> dict[str, float]:
    """A run's test metrics (``metrics.json``): :func:`prediction_errors`, the matrix MAE (µHa)
    per block family (on-site, same-element +/-, different elements; of the learned matrix, in
    its own basis), and for a full Fock target :func:`fock_errors`. ``numbers``: each
    structure's atomic numbers, in the order of ``targets``' matrices."""
    errors = {
        **prediction_errors(predicted, targets.matrices, targets.n_occupied, targets.overlaps),
        **block_type_errors(predicted, targets.matrices, targets.basis, numbers),
    }
    kind = target_kind(targets.name)
    if kind.full_fock:
        if targets.ao_overlaps is None:
            raise ValueError(f"the {targets.name!r} targets came without their AO overlaps")
        errors.update(
            fock_errors(predicted, targets.matrices, targets.n_occupied, targets.ao_overlaps, kind.orthogonal)
        )
    return errors
