"""RPR against symmetry-adapted and plain Cartesian models, on identical splits.

Models (each ``fit(positions (m, n, 3) Å, targets) -> predict(positions) -> targets``, targets
(m, 3) dipoles in Debye or (m, 3, 3) polarizabilities in bohr^3):

- ``rpr``: :class:`RotatePredictRotate`, Gaussian kernel ridge on inverse distances;
- ``rpr_reference``: the same with axis signs aligned to the reference geometry;
- ``equivariant``: :class:`EquivariantPropertyModel` (lambda = 1; lambda = 0 and 2);
- ``cartesian``: Gaussian kernel ridge on centred lab-frame coordinates;
- ``cartesian_augmented``: the same trained on ``n_augment`` random rotations of each frame.

Reported: MAE and RMSE of components (and of dipole magnitudes); the equivariance error, the
RMS of f(Q x) - Q f(x) (vectors) or f(Q x) - Q f(x) Q^T (tensors) over random proper rotations
Q of the test set; the smoothness along the test trajectory, the largest step |f(t+1) - f(t)|
(Euclidean or Frobenius norm) relative to the reference's largest step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ase
import numpy as np
import torch

from nhamil.orbitals import random_rotation
from nhamil.properties.descriptors import centred_coordinates
from nhamil.properties.equivariant import EquivariantPropertyModel
from nhamil.properties.rpr import GaussianKernelRidge, RotatePredictRotate, from_frame

Predictor = Callable[[np.ndarray], np.ndarray]
Model = Callable[[np.ndarray, np.ndarray], Predictor]


@dataclass(frozen=True)
class Molecule:
    """numbers (n,), masses (n,) amu, reference geometry (n, 3) Å of the molecule being modelled."""

    numbers: np.ndarray
    masses: np.ndarray
    reference: np.ndarray

    def frames(self, positions: np.ndarray) -> list[ase.Atoms]:
        return [ase.Atoms(self.numbers, p) for p in positions]


def split_indices(n_frames: int, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Test: the last ``n_test`` frames, contiguous (for smoothness); train: ``n_train`` frames
    evenly spaced over the frames before them."""
    if n_train < 2 or n_test < 2 or n_train > n_frames - n_test:
        raise ValueError(f"cannot take {n_train} training and {n_test} test frames out of {n_frames}")
    train = np.unique(np.linspace(0, n_frames - n_test - 1, n_train).round().astype(int))
    return train, np.arange(n_frames - n_test, n_frames)


def rotate_targets(targets: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Q v or Q A Q^T for rotations Q (m, 3, 3)."""
    return from_frame(targets, rotations.transpose(0, 2, 1))


def random_rotations(count: int, seed: int) -> np.ndarray:
    """(count, 3, 3) random proper rotations, seeded."""
    generator = torch.Generator().manual_seed(seed)
    return np.stack([random_rotation(generator).numpy() for _ in range(count)])


def rpr_model(molecule: Molecule, signs: str = "third_moment") -> Model:
    model = RotatePredictRotate(
        masses=molecule.masses, reference=molecule.reference, regressor=GaussianKernelRidge(), signs=signs
    )
    return lambda positions, targets: model.fit(positions, targets).predict


def equivariant_model(molecule: Molecule, model: EquivariantPropertyModel) -> Model:
    def fit(positions: np.ndarray, targets: np.ndarray) -> Predictor:
        fitted = model.fit(molecule.frames(positions), targets)
        return lambda new: fitted.predict(molecule.frames(new))

    return fit


def cartesian_model(molecule: Molecule, n_augment: int = 0, seed: int = 0) -> Model:
    """Kernel ridge on lab-frame coordinates; ``n_augment`` > 0 adds that many randomly rotated
    copies of each training frame (with rotated targets)."""

    def fit(positions: np.ndarray, targets: np.ndarray) -> Predictor:
        if n_augment:
            rotations = random_rotations(n_augment * len(positions), seed)
            copies = np.repeat(np.arange(len(positions)), n_augment)  # copies of a frame stay together, in time order
            positions = np.einsum("mij,maj->mai", rotations, positions[copies])
            targets = rotate_targets(targets[copies], rotations)
        fitted = GaussianKernelRidge().fit(
            centred_coordinates(positions, molecule.masses), targets.reshape(len(targets), -1)
        )
        return lambda new: fitted.predict(centred_coordinates(new, molecule.masses)).reshape(
            len(new), *targets.shape[1:]
        )

    return fit


def errors(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """MAE and RMSE of all components; for vectors also of the magnitudes (targets' unit)."""
    difference = predicted - reference
    result = {"mae": float(np.abs(difference).mean()), "rmse": float(np.sqrt(np.square(difference).mean()))}
    if reference.ndim == 2:
        norms = np.linalg.norm(predicted, axis=1) - np.linalg.norm(reference, axis=1)
        result.update(magnitude_mae=float(np.abs(norms).mean()), magnitude_rmse=float(np.sqrt(np.square(norms).mean())))
    return result


def equivariance_error(predict: Predictor, positions: np.ndarray, n_rotations: int, seed: int) -> float:
    """RMS of f(Q x) - Q f(x) over ``n_rotations`` random proper rotations of every frame, in
    the targets' unit (0 for an equivariant model)."""
    base = predict(positions)
    squared = []
    for rotation in random_rotations(n_rotations, seed):
        rotated = predict(positions @ rotation.T)
        squared.append(np.square(rotated - rotate_targets(base, np.broadcast_to(rotation, (len(base), 3, 3)))).mean())
    return float(np.sqrt(np.mean(squared)))


def steps(values: np.ndarray) -> np.ndarray:
    """(m - 1,) norms |f(t + 1) - f(t)| along a trajectory of vectors or tensors."""
    return np.linalg.norm(np.diff(values, axis=0).reshape(len(values) - 1, -1), axis=1)


def smoothness(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Largest and 99th-percentile step of the predictions, each relative to the reference's."""
    mine, theirs = steps(predicted), steps(reference)
    return {
        "max_step_ratio": float(mine.max() / theirs.max()),
        "p99_step_ratio": float(np.percentile(mine, 99) / np.percentile(theirs, 99)),
    }


def frame_jumps(rotations: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Indices t where the principal frame changes abruptly between t and t + 1 (a moment
    crossing or a sign flip: Frobenius norm of R(t + 1) - R(t) above ``threshold``)."""
    return np.flatnonzero(np.linalg.norm(np.diff(rotations, axis=0), axis=(1, 2)) > threshold)
