"""The principal-axes frame of a molecule, from its inertia tensor.

Sign convention (deterministic, documented): the axes are the eigenvectors of the inertia
tensor about the centre of mass, ordered by increasing principal moment; the first two are each
oriented so that the mass-weighted third moment sum_i m_i (e . r_i)^3 is >= 0, and the third is
their cross product, so the frame is a proper rotation. Law: for a proper rotation Q of the
positions, R(Q x) = R(x) Q^T wherever the frame is well defined, i.e. where the principal moments
are distinct and the two third moments non-zero (a centrosymmetric geometry, e.g. anti
1,2-dichloroethane, has vanishing third moments and an ill-defined sign). For an improper Q the
third axis flips: the frame is only SO(3)-covariant.
"""

from __future__ import annotations

import numpy as np


def inertia_tensor(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """(3, 3) inertia tensor about the centre of mass, amu Å^2, of positions (n, 3) Å and
    masses (n,) amu."""
    centred = positions - masses @ positions / masses.sum()
    weighted = centred * masses[:, None]
    return np.eye(3) * np.sum(weighted * centred) - weighted.T @ centred


def principal_frame(
    positions: np.ndarray, masses: np.ndarray, tolerance: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(rotation (3, 3), moments (3,) amu Å^2 ascending, degenerate).

    Rows of ``rotation`` are the principal axes (see the module docstring for their signs), so
    frame coordinates are ``rotation @ (r - centre_of_mass)``; det(rotation) = +1. ``degenerate``
    is True when two moments differ by less than ``tolerance`` times the largest: the axes are
    then ill-defined and predictions made in the frame can jump.
    """
    positions, masses = np.asarray(positions, dtype=np.float64), np.asarray(masses, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3 or masses.shape != positions.shape[:1]:
        raise ValueError(f"need positions (n, 3) and masses (n,), got {positions.shape} and {masses.shape}")
    moments, axes = np.linalg.eigh(inertia_tensor(positions, masses))
    centred = positions - masses @ positions / masses.sum()
    first, second = (axis * (1.0 if masses @ (centred @ axis) ** 3 >= 0 else -1.0) for axis in axes.T[:2])
    rotation = np.stack([first, second, np.cross(first, second)])
    degenerate = bool(np.diff(moments).min() < tolerance * max(moments[-1], 1e-300))
    return rotation, moments, degenerate


def align_to_reference(
    rotation: np.ndarray, centred: np.ndarray, reference: np.ndarray, masses: np.ndarray
) -> np.ndarray:
    """An alternative sign convention for molecules whose atoms keep their order (a trajectory):
    of the four proper sign choices diag(s1, s2, s1 s2) @ rotation, the one whose frame
    coordinates best overlap ``reference`` (n, 3), Å, the reference geometry in its own
    principal frame (largest sum_i m_i x_i . x_i^ref). ``centred``: (n, 3) positions about the
    centre of mass, Å. Keeps the law R(Q x) = R(x) Q^T for proper Q."""
    coordinates = centred @ rotation.T
    signs = [np.array([a, b, a * b]) for a in (1.0, -1.0) for b in (1.0, -1.0)]
    best = max(signs, key=lambda s: float(masses @ np.sum(coordinates * s * reference, axis=1)))
    return best[:, None] * rotation


def principal_frames(
    positions: np.ndarray, masses: np.ndarray, tolerance: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`principal_frame` of each structure: positions (m, n, 3) Å -> rotations (m, 3, 3),
    moments (m, 3), degenerate (m,) bool."""
    frames = [principal_frame(p, masses, tolerance) for p in positions]
    return tuple(np.stack([frame[k] for frame in frames]) for k in range(3))
