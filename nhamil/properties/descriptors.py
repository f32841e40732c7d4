"""Descriptors of a fixed-composition molecule along a trajectory (atoms in a fixed order).

Inverse distances relative to a reference geometry (the RPR paper's descriptor) are invariant
under rotations, reflections and translations; centred Cartesian coordinates are not (they
rotate with the molecule: x(Q r) = x(r) Q^T row by row).
"""

from __future__ import annotations

import numpy as np


def inverse_distances(positions: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(m, n (n - 1) / 2) ratios d_ij(reference) / d_ij for the pairs i < j, of positions
    (m, n, 3) Å and the reference geometry (n, 3) Å (1 at the reference)."""
    first, second = np.triu_indices(positions.shape[1], k=1)
    distances = np.linalg.norm(positions[:, first] - positions[:, second], axis=-1)
    reference_distances = np.linalg.norm(reference[first] - reference[second], axis=-1)
    if np.any(distances <= 0) or np.any(reference_distances <= 0):
        raise ValueError("two atoms coincide: inverse distances are undefined")
    return reference_distances / distances


def centred_coordinates(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """(m, 3 n) Cartesian coordinates about the centre of mass, Å, flattened atom by atom."""
    centre = np.einsum("a,mac->mc", masses, positions) / masses.sum()
    return (positions - centre[:, None]).reshape(len(positions), -1)
