"""Rotate-predict-rotate (RPR): invariant regression of vectors and rank-2 tensors in the
principal-axes frame.

Fit: rotate every structure and its target into its principal-axes frame (rotation R from
:func:`nhamil.properties.frames.principal_frame`: v_frame = R v, A_frame = R A R^T), learn the
frame components with any invariant regressor of a descriptor of the frame coordinates.
Predict: v = R^T v_frame, A = R^T A_frame R. Law: for a proper rotation Q, f(Q x) = Q f(x)
(vectors) and Q f(x) Q^T (tensors) exactly wherever the frame is well defined; where principal
moments cross or third moments vanish the frame jumps, and so can the predictions.

The regressor is anything with ``fit(features (m, q), targets (m, t))`` returning a fitted
object with ``predict(features (m', q)) -> (m', t)``: :class:`GaussianKernelRidge` (the paper's
kernel ridge) or :class:`HeadRegressor` (nhamil's ridge and kernel heads on invariant blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from nhamil.heads import Head, KernelSettings, RidgeSettings, fit_head, predict_head
from nhamil.properties.descriptors import inverse_distances
from nhamil.properties.frames import align_to_reference, principal_frame, principal_frames


class Fitted(Protocol):
    def predict(self, features: np.ndarray) -> np.ndarray: ...


class Regressor(Protocol):
    def fit(self, features: np.ndarray, targets: np.ndarray) -> Fitted: ...


def blocks(n: int, n_blocks: int = 5) -> np.ndarray:
    """(n,) block index of n rows in trajectory order: ``n_blocks`` contiguous stretches, so that
    model selection never validates on a near-duplicate neighbour of a training frame."""
    return np.arange(n) * n_blocks // max(n, 1)


@dataclass(frozen=True)
class _KernelModel:
    """Fitted Gaussian kernel ridge: training rows (m, q), weights (m, t), mean (t,), width."""

    rows: np.ndarray
    weights: np.ndarray
    mean: np.ndarray
    width: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(m', q) -> (m', t)."""
        return _gaussian(features, self.rows, self.width) @ self.weights + self.mean


@dataclass(frozen=True, kw_only=True)
class GaussianKernelRidge:
    """Kernel ridge with k(a, b) = exp(-|a - b|^2 / (2 w^2)), w = width_factor x the median
    distance between training rows; width factor and alpha (relative to the mean kernel
    eigenvalue) chosen on a held-out fifth of the training rows, the last of :func:`blocks` of
    the row order (rows in trajectory order: a stretch of time); float64."""

    width_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-10, 0))

    def fit(self, features: np.ndarray, targets: np.ndarray) -> _KernelModel:
        """features (m, q), targets (m, t)."""
        x, y = np.asarray(features, dtype=np.float64), np.asarray(targets, dtype=np.float64)
        valid = blocks(len(x)) == 4
        median = _median_distance(x)
        best = min(
            ((f * median, a) for f in self.width_factors for a in self.alphas),
            key=lambda wa: _validation_error(x[~valid], y[~valid], x[valid], y[valid], *wa),
        )
        return _solve(x, y, *best)


def _median_distance(x: np.ndarray) -> float:
    sample = x[:: max(1, len(x) // 300)]
    distances = np.linalg.norm(sample[:, None] - sample[None], axis=-1)
    return float(np.median(distances[np.triu_indices(len(sample), k=1)])) or 1.0


def _gaussian(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T
    return np.exp(-np.maximum(squared, 0.0) / (2 * width**2))


def _solve(x: np.ndarray, y: np.ndarray, width: float, alpha: float) -> _KernelModel:
    kernel = _gaussian(x, x, width)
    mean = y.mean(axis=0)
    weights = np.linalg.solve(kernel + alpha * np.trace(kernel) / len(x) * np.eye(len(x)), y - mean)
    return _KernelModel(x, weights, mean, width)


def _validation_error(x, y, x_valid, y_valid, width: float, alpha: float) -> float:
    return float(np.square(_solve(x, y, width, alpha).predict(x_valid) - y_valid).sum())


@dataclass(frozen=True, kw_only=True)
class HeadRegressor:
    """nhamil's invariant heads as a regressor: each feature row is a lambda = 0, sigma = +1
    block (1, q) with an intercept; ``settings`` a RidgeSettings (ridge) or KernelSettings
    (lambda-SOAP kernel on the unit-normalized rows)."""

    settings: RidgeSettings | KernelSettings = field(default_factory=RidgeSettings)

    def fit(self, features: np.ndarray, targets: np.ndarray) -> _HeadModel:
        x = torch.as_tensor(features, dtype=torch.float64)[:, None]
        y = torch.as_tensor(targets, dtype=torch.float64)[:, None]
        groups = torch.as_tensor(blocks(len(x), self.settings.n_folds))
        return _HeadModel(fit_head(self.settings, x, x, y, groups, intercept=True))


@dataclass(frozen=True)
class _HeadModel:
    fit: Head

    def predict(self, features: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(features, dtype=torch.float64)[:, None]
        return predict_head(self.fit, x, x)[:, 0].numpy()


def to_frame(targets: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Vectors (m, 3) -> R v, or tensors (m, 3, 3) -> R A R^T, with rotations (m, 3, 3)."""
    if targets.shape[1:] == (3,):
        return np.einsum("mij,mj->mi", rotations, targets)
    if targets.shape[1:] == (3, 3):
        return rotations @ targets @ rotations.transpose(0, 2, 1)
    raise ValueError(f"targets must be vectors (m, 3) or rank-2 tensors (m, 3, 3), got {targets.shape}")


def from_frame(targets: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_frame`: R^T v, R^T A R."""
    return to_frame(targets, rotations.transpose(0, 2, 1))


@dataclass(frozen=True, kw_only=True)
class RotatePredictRotate:
    """RPR for one molecule (atoms in a fixed order): masses (n,) amu; descriptor maps frame
    coordinates (m, n, 3) Å to invariant features (m, q) (default: inverse distances relative
    to ``reference`` (n, 3) Å); regressor as in the module docstring. signs: "third_moment"
    (:func:`principal_frame`'s convention) or "reference" (:func:`align_to_reference` with the
    reference geometry: for trajectories of one molecule with its atoms in a fixed order)."""

    masses: np.ndarray
    reference: np.ndarray
    regressor: Regressor = field(default_factory=GaussianKernelRidge)
    descriptor: Callable[[np.ndarray, np.ndarray], np.ndarray] = inverse_distances
    tolerance: float = 1e-3
    signs: str = "third_moment"

    def frames(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rotations (m, 3, 3) and frame coordinates (m, n, 3) Å of positions (m, n, 3) Å."""
        if self.signs not in ("third_moment", "reference"):
            raise ValueError(f"signs must be 'third_moment' or 'reference', got {self.signs!r}")
        rotations, _, _ = principal_frames(positions, self.masses, self.tolerance)
        centred = positions - (np.einsum("a,mac->mc", self.masses, positions) / self.masses.sum())[:, None]
        if self.signs == "reference":
            reference = self.frames_of_reference()
            rotations = np.stack(
                [align_to_reference(r, c, reference, self.masses) for r, c in zip(rotations, centred, strict=True)]
            )
        return rotations, np.einsum("mij,maj->mai", rotations, centred)

    def frames_of_reference(self) -> np.ndarray:
        """(n, 3) the reference geometry in its principal frame (third-moment signs), Å."""
        rotation, _, _ = principal_frame(self.reference, self.masses, self.tolerance)
        return (self.reference - self.masses @ self.reference / self.masses.sum()) @ rotation.T

    def fit(self, positions: np.ndarray, targets: np.ndarray) -> FittedRPR:
        """positions (m, n, 3) Å; targets (m, 3) vectors or (m, 3, 3) tensors, lab frame."""
        rotations, coordinates = self.frames(positions)
        framed = to_frame(np.asarray(targets, dtype=np.float64), rotations)
        fitted = self.regressor.fit(self.descriptor(coordinates, self.reference), framed.reshape(len(framed), -1))
        return FittedRPR(self, fitted, framed.shape[1:])


@dataclass(frozen=True)
class FittedRPR:
    """A fitted RPR model; ``predict(positions (m, n, 3) Å)`` -> (m, 3) or (m, 3, 3), lab frame."""

    model: RotatePredictRotate
    fitted: Fitted
    shape: tuple[int, ...]

    def predict(self, positions: np.ndarray) -> np.ndarray:
        rotations, coordinates = self.model.frames(positions)
        framed = self.fitted.predict(self.model.descriptor(coordinates, self.model.reference))
        return from_frame(framed.reshape(len(framed), *self.shape), rotations)
