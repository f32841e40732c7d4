"""Symmetry-adapted models of dipoles and polarizabilities from nhamil's atom-centred features.

Dipole: a lambda = 1, sigma = +1 target in canonical real-harmonic order (y, z, x), predicted as
a sum of atomic contributions, each linear in its atom's |rho_i^nu; 1 mu> with weights shared
across mu and per element; summed over atoms this is one mu-shared regression on per-element
feature sums (ridge, or a lambda-SOAP kernel on those sums). Polarizability: its lambda = 0
(trace) and lambda = 2 (symmetric traceless) parts, predicted the same way (intercept for
lambda = 0 only), then recombined. Law, for any proper or improper rotation R of the positions:
mu(R x) = R mu(x), alpha(R x) = R alpha(x) R^T, exactly (float64 round-off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import ase
import numpy as np
import torch

from nhamil.features import DensitySettings, atom_centered_features
from nhamil.heads import KernelSettings, RidgeSettings, fit_head, predict_head
from nhamil.orbitals import clebsch_gordan
from nhamil.properties.rpr import blocks
from nhamil.structures import Structures

#: (x, y, z) -> canonical (y, z, x) order of a lambda = 1 component.
_CANONICAL = [1, 2, 0]


def vector_to_spherical(vectors: np.ndarray) -> torch.Tensor:
    """(m, 3) Cartesian vectors -> (m, 3) lambda = 1 components (y, z, x); law: D_1(R) = P R P^T."""
    return torch.as_tensor(np.asarray(vectors)[:, _CANONICAL], dtype=torch.float64)


def spherical_to_vector(components: torch.Tensor) -> np.ndarray:
    """The inverse of :func:`vector_to_spherical`."""
    return components[:, [2, 0, 1]].numpy()


def tensor_to_spherical(tensors: np.ndarray) -> dict[int, torch.Tensor]:
    """(m, 3, 3) Cartesian rank-2 tensors -> lambda -> (m, 2 lambda + 1) for lambda = 0, 1, 2,
    coupled with the orthogonal real Clebsch-Gordan map of two lambda = 1 vectors (lambda = 0 is
    trace / sqrt(3), lambda = 1 the antisymmetric part, zero for a polarizability). Law:
    part_lambda(R A R^T) = irrep_wigner(lambda, +1, R) part_lambda(A)."""
    canonical = torch.as_tensor(np.asarray(tensors), dtype=torch.float64)[:, _CANONICAL][:, :, _CANONICAL]
    return {lam: torch.einsum("mab,abk->mk", canonical, clebsch_gordan(1, 1, lam)) for lam in range(3)}


def spherical_to_tensor(parts: dict[int, torch.Tensor]) -> np.ndarray:
    """The inverse of :func:`tensor_to_spherical`; missing lambdas count as zero."""
    canonical = sum(torch.einsum("mk,abk->mab", part, clebsch_gordan(1, 1, lam)) for lam, part in parts.items())
    return canonical[:, [2, 0, 1]][:, :, [2, 0, 1]].numpy()


def molecular_features(
    frames: Sequence[ase.Atoms],
    species: Sequence[int],
    settings: DensitySettings,
    *,
    max_lambda: int,
    correlation_order: int,
) -> dict[tuple[int, int], torch.Tensor]:
    """(lam, sigma) -> (m, 2 lam + 1, len(species) q): per molecule, the sums over the atoms of
    each element of |rho_i^nu; lam mu> (element blocks side by side). Law as the atomic blocks:
    block(R x) = irrep_wigner(lam, sigma (-1)^lam, R) block(x)."""
    structures = Structures.from_atoms(frames)
    atomic = atom_centered_features(
        structures, species, settings, max_lambda=max_lambda, correlation_order=correlation_order
    )
    element = torch.as_tensor([list(species).index(int(z)) for z in structures.numbers])
    slot = structures.system * len(species) + element
    summed = {}
    for key, block in atomic.blocks.items():
        total = block.new_zeros(structures.n_systems * len(species), *block.shape[1:]).index_add_(0, slot, block)
        summed[key] = total.reshape(structures.n_systems, len(species), *block.shape[1:]).permute(0, 2, 1, 3).flatten(2)
    return summed


@dataclass(frozen=True, kw_only=True)
class EquivariantPropertyModel:
    """Settings: density expansion, correlation order nu, species (atomic numbers), head
    (RidgeSettings or KernelSettings, see :mod:`nhamil.heads`)."""

    species: tuple[int, ...]
    density: DensitySettings = field(default_factory=lambda: DensitySettings(cutoff=5.0, max_radial=4, max_angular=3))
    correlation_order: int = 2
    head: RidgeSettings | KernelSettings = field(default_factory=RidgeSettings)

    def features(self, frames: Sequence[ase.Atoms]) -> dict[tuple[int, int], torch.Tensor]:
        return molecular_features(
            frames, self.species, self.density, max_lambda=2, correlation_order=self.correlation_order
        )

    def fit(self, frames: Sequence[ase.Atoms], targets: np.ndarray) -> FittedEquivariant:
        """frames (Å), in trajectory order: the cross-validation folds are contiguous stretches;
        targets (m, 3) dipoles or (m, 3, 3) polarizabilities (any unit)."""
        features, parts = self.features(frames), _spherical_parts(targets)
        groups = torch.as_tensor(blocks(len(frames), self.head.n_folds))
        fits = {lam: self._fit_block(features, lam, part, groups) for lam, part in parts.items()}
        return FittedEquivariant(self, fits, np.asarray(targets).ndim)

    def _fit_block(self, features, lam: int, part: torch.Tensor, groups: torch.Tensor):
        x, y, u = features[(lam, 1)], part[:, :, None], features[(0, 1)]
        return fit_head(self.head, x, u, y, groups, intercept=lam == 0, equivariance=(lam, 1))


def _spherical_parts(targets: np.ndarray) -> dict[int, torch.Tensor]:
    """lambda -> (m, 2 lambda + 1) parts to fit: {1} for vectors, {0, 2} for symmetric tensors."""
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape[1:] == (3,):
        return {1: vector_to_spherical(targets)}
    if targets.shape[1:] == (3, 3):
        parts = tensor_to_spherical(targets)
        return {0: parts[0], 2: parts[2]}
    raise ValueError(f"targets must be vectors (m, 3) or rank-2 tensors (m, 3, 3), got {targets.shape}")


@dataclass(frozen=True)
class FittedEquivariant:
    """A fitted model; ``predict(frames)`` -> (m, 3) or (m, 3, 3) in the targets' unit."""

    model: EquivariantPropertyModel
    fits: dict
    rank: int

    def predict(self, frames: Sequence[ase.Atoms]) -> np.ndarray:
        features = self.model.features(frames)
        parts = {lam: self._predict_block(fit, features, lam)[:, :, 0] for lam, fit in self.fits.items()}
        return spherical_to_vector(parts[1]) if self.rank == 2 else spherical_to_tensor(parts)

    def _predict_block(self, fit, features, lam: int) -> torch.Tensor:
        return predict_head(fit, features[(lam, 1)], features[(0, 1)])
