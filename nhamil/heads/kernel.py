"""Symmetry-adapted kernel ridge regression (lambda-SOAP kernels), full or sparse.

For two samples A, B with (lambda, sigma) features X_A, X_B (2 lambda + 1, q) and invariant
(lambda = 0, sigma = +1) features u_A, u_B normalized to unit length, the kernel is

    K(A, B) = X_A X_B^T (u_A . u_B)^(zeta - 1)          (2 lambda + 1, 2 lambda + 1)

so K(R A, B) = D K(A, B): the linear lambda kernel times a polynomial invariant kernel.
Regression uses the Nyström feature map phi(A) = K(A, M) V diag(s)^(-1/2) over active samples M
(all training samples for a full kernel; n_active picked by farthest-point sampling on u for
the sparse one), with K(M, M) = V diag(s) V^T; ridge on phi (mu-shared weights, cross-validated
alpha, see :mod:`nhamil.heads.ridge`) is then exactly kernel ridge (full) or the projected
process (sparse). phi(R A) = D phi(A), so predictions are exactly equivariant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .ridge import RidgeFit, RidgeSettings, fit_ridge


@dataclass(frozen=True, kw_only=True)
class KernelSettings:
    """zeta: power of the invariant kernel (zeta = 1: linear); n_active: active samples per block
    (None: all, a full kernel); alphas, n_folds, seed: as :class:`RidgeSettings`."""

    zeta: int = 2
    n_active: Optional[int] = None
    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-12, 1))
    n_folds: int = 5
    seed: int = 0

    def ridge(self) -> RidgeSettings:
        return RidgeSettings(alphas=self.alphas, n_folds=self.n_folds, seed=self.seed)


@dataclass(frozen=True)
class NystromMap:
    """The Nyström feature map of a kernel over active samples. active: (m, 2 lambda + 1, q)
    scaled features of the active samples; active_invariants: (m, q0) their unit invariants;
    projection: (m (2 lambda + 1), r) V diag(s)^(-1/2) of the active kernel; scale: scalar
    feature scale; zeta: power of the invariant kernel."""

    active: torch.Tensor
    active_invariants: torch.Tensor
    projection: torch.Tensor
    scale: torch.Tensor
    zeta: int

    @classmethod
    def over(cls, active: torch.Tensor, active_invariants: torch.Tensor, scale: torch.Tensor, zeta: int) -> NystromMap:
        """The map over ``active`` (m, 2 lambda + 1, q, already divided by ``scale``) with unit
        invariants ``active_invariants`` (m, q0)."""
        kernel = lambda_kernel(active, active_invariants, active, active_invariants, zeta)
        return cls(active, active_invariants, _nystrom_projection(kernel), scale, zeta)

    def __call__(self, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        """(n, 2 lambda + 1, q), (n, 1, q0) -> (n, 2 lambda + 1, r) Nyström features phi;
        phi(R A) = D phi(A)."""
        kernel = lambda_kernel(
            features.to(self.active) / self.scale,
            unit_invariants(invariants.to(self.active)),
            self.active,
            self.active_invariants,
            self.zeta,
        )
        return kernel.flatten(2) @ self.projection

    def to(self, device: torch.device | str) -> NystromMap:
        tensors = {name: getattr(self, name).to(device) for name in _MAP_TENSORS}
        return NystromMap(**tensors, zeta=self.zeta)

    def state(self) -> dict:
        return {**{name: getattr(self, name) for name in _MAP_TENSORS}, "zeta": self.zeta}


_MAP_TENSORS = ("active", "active_invariants", "projection", "scale")


@dataclass(frozen=True)
class KernelFit:
    """A fitted kernel head: ridge on the Nyström features of ``nystrom``."""

    nystrom: NystromMap
    ridge: RidgeFit

    def predict(self, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        """(n, 2 lambda + 1, q), (n, 1, q0) -> (n, 2 lambda + 1, t)."""
        return self.ridge.predict(self.nystrom(features, invariants))

    def to(self, device: torch.device | str) -> KernelFit:
        return KernelFit(self.nystrom.to(device), self.ridge.to(device))

    def state(self) -> dict:
        return {**self.nystrom.state(), "ridge": self.ridge.state()}

    @classmethod
    def from_state(cls, state: dict) -> KernelFit:
        nystrom = NystromMap(**{name: state[name] for name in (*_MAP_TENSORS, "zeta")})
        return cls(nystrom, RidgeFit.from_state(state["ridge"]))


def fit_kernel_ridge(
    features: torch.Tensor,
    invariants: torch.Tensor,
    targets: torch.Tensor,
    groups: torch.Tensor,
    *,
    intercept: bool,
    settings: KernelSettings,
) -> KernelFit:
    """Kernel ridge for t targets sharing one kernel, in float64.

    features (n, 2 lambda + 1, q); invariants (n, 1, q0) the samples' lambda = 0, sigma = +1
    features; targets (n, 2 lambda + 1, t); groups (n,) molecule of each sample (for the folds).
    """
    x = features.to(torch.float64)
    scale = feature_scale(x.pow(2).sum(), x.numel())
    u = unit_invariants(invariants.to(torch.float64))
    chosen = farthest_point_sampling(u, settings.n_active)
    nystrom = NystromMap.over(x[chosen] / scale, u[chosen], scale, settings.zeta)
    ridge = fit_ridge(nystrom(x, invariants), targets, groups, intercept=intercept, settings=settings.ridge())
    return KernelFit(nystrom, ridge)


def feature_scale(sum_of_squares: torch.Tensor, count: int) -> torch.Tensor:
    """The kernel's feature scale: the root mean square of the features' ``count`` entries."""
    return (sum_of_squares / count).sqrt().clamp_min(1e-12)


def lambda_kernel(
    x: torch.Tensor, u: torch.Tensor, active: torch.Tensor, active_u: torch.Tensor, zeta: int
) -> torch.Tensor:
    """(n, 2 lambda + 1, m, 2 lambda + 1) kernel between n samples and m active ones."""
    linear = torch.einsum("nkq,mjq->nkmj", x, active)
    invariant = (u @ active_u.T).pow(zeta - 1)
    return linear * invariant[:, None, :, None]


def unit_invariants(invariants: torch.Tensor) -> torch.Tensor:
    """(n, 1, q0) -> (n, q0) invariant features scaled to unit length."""
    flat = invariants.flatten(1)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-300)


def farthest_point_sampling(points: torch.Tensor, n_select: int | None) -> torch.Tensor:
    """Indices of ``n_select`` rows of ``points`` (n, d) by farthest-point sampling, starting
    from row 0 (deterministic); all rows if ``n_select`` is None or not smaller than n."""
    if n_select is None or n_select >= len(points):
        return torch.arange(len(points), device=points.device)
    chosen = [0]
    distance = (points - points[0]).pow(2).sum(dim=1)
    for _ in range(n_select - 1):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, (points - points[chosen[-1]]).pow(2).sum(dim=1))
    return torch.as_tensor(chosen, device=points.device)


def _nystrom_projection(active_kernel: torch.Tensor) -> torch.Tensor:
    """(m k, r) map V diag(s)^(-1/2) from the (m, k, m, k) active kernel, dropping eigenvalues
    below 1e-12 of the largest (the kernel is positive semi-definite)."""
    size = active_kernel.shape[0] * active_kernel.shape[1]
    eigenvalues, vectors = torch.linalg.eigh(active_kernel.reshape(size, size))
    keep = eigenvalues > 1e-12 * eigenvalues.max()
    return vectors[:, keep] / eigenvalues[keep].sqrt()
