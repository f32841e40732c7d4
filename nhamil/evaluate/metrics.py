"""Errors of predicted Hamiltonians: matrix elements and orbital energies.

Matrix errors are reported in µHa, orbital energies and gaps in meV. Eigenvalues are
invariant under rotations and permutations, so all of these are too. Matrices of a
non-orthogonal target (the AO ``fock``) come with their (n, n) AO overlaps, ``overlaps``, and
their orbital energies are the generalized eigenvalues ``F C = S C E``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..targets import orbital_energies_of
from ..units import HARTREE_TO_MEV, HARTREE_TO_MICROHARTREE


def orbital_energies(matrices: Sequence[np.ndarray], overlaps: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Ascending eigenvalues (Hartree) of each symmetric matrix: plain for an orthogonal basis,
    generalized with each structure's AO overlap if ``overlaps`` are given."""
    return [orbital_energies_of(m, None if overlaps is None else overlaps[k]) for k, m in enumerate(matrices)]


def hamiltonian_errors(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> dict[str, float]:
    """MAE and RMSE over all matrix elements, µHa."""
    difference = np.concatenate([(np.asarray(p) - np.asarray(r)).ravel() for p, r in zip(predicted, reference)])
    return {"hamiltonian_mae_uha": float(np.abs(difference).mean() * HARTREE_TO_MICROHARTREE),
            "hamiltonian_rmse_uha": float(np.sqrt((difference ** 2).mean()) * HARTREE_TO_MICROHARTREE)}


def eigenvalue_errors(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                      n_occupied: Sequence[int], overlaps: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """Orbital-energy MAE and RMSE (meV) over occupied and over all states, and HOMO-LUMO gap
    MAE (meV). ``n_occupied`` (per structure) counts the occupied states of each matrix;
    ``overlaps``: AO overlaps of a non-orthogonal target."""
    eig_pred, eig_ref = orbital_energies(predicted, overlaps), orbital_energies(reference, overlaps)
    occupied = np.concatenate([p[:n] - r[:n] for p, r, n in zip(eig_pred, eig_ref, n_occupied)])
    every = np.concatenate([p - r for p, r in zip(eig_pred, eig_ref)])
    gaps = np.array([_gap(p, n) - _gap(r, n) for p, r, n in zip(eig_pred, eig_ref, n_occupied)])
    return {
        "occupied_energy_mae_mev": float(np.abs(occupied).mean() * HARTREE_TO_MEV),
        "occupied_energy_rmse_mev": float(np.sqrt((occupied ** 2).mean()) * HARTREE_TO_MEV),
        "energy_mae_mev": float(np.abs(every).mean() * HARTREE_TO_MEV),
        "energy_rmse_mev": float(np.sqrt((every ** 2).mean()) * HARTREE_TO_MEV),
        "gap_mae_mev": float(np.abs(gaps).mean() * HARTREE_TO_MEV),
    }


def _gap(energies: np.ndarray, n_occupied: int) -> float:
    if not 0 < n_occupied < len(energies):
        raise ValueError(f"a HOMO-LUMO gap needs occupied and empty states, got {n_occupied} of {len(energies)}")
    return float(energies[n_occupied] - energies[n_occupied - 1])


def prediction_errors(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray],
                      n_occupied: Sequence[int], overlaps: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """All the errors above in one flat dict (the content of ``metrics.json``); ``overlaps``:
    AO overlaps of a non-orthogonal target, one per structure."""
    if len(predicted) != len(reference) or len(reference) != len(n_occupied):
        raise ValueError(f"got {len(predicted)} predictions, {len(reference)} references, {len(n_occupied)} counts")
    if overlaps is not None and len(overlaps) != len(reference):
        raise ValueError(f"got {len(overlaps)} overlaps for {len(reference)} references")
    return {**hamiltonian_errors(predicted, reference), **eigenvalue_errors(predicted, reference, n_occupied, overlaps)}


def errors_by_size(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], n_occupied: Sequence[int],
                   n_atoms: Sequence[int], overlaps: Sequence[np.ndarray] | None = None) -> dict[int, dict[str, float]]:
    """:func:`prediction_errors` of the structures of each size: number of atoms -> errors, with
    ``n_structures`` counting the structures of that size. Sizes in ascending order."""
    if len(n_atoms) != len(predicted):
        raise ValueError(f"got {len(n_atoms)} sizes for {len(predicted)} predictions")
    by_size = {}
    for size in sorted(set(int(n) for n in n_atoms)):
        chosen = [k for k, n in enumerate(n_atoms) if n == size]
        errors = prediction_errors([predicted[k] for k in chosen], [reference[k] for k in chosen],
                                   [n_occupied[k] for k in chosen],
                                   None if overlaps is None else [overlaps[k] for k in chosen])
        by_size[size] = {"n_structures": len(chosen), **errors}
    return by_size
