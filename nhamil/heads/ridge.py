"""Equivariant ridge regression: one weight vector per block, shared across mu, in float64.

A (lambda, sigma) block of features X (n, 2 lambda + 1, q) predicts targets Y (n, 2 lambda + 1, t)
as Y = X W: every mu component uses the same weights, so if X(R x) = D X(x) then
Y(R x) = D Y(x) exactly. An intercept is allowed only for invariant (lambda = 0, sigma = +1)
blocks; any other constant would break the symmetry.

Several targets that share the same features (the blocks of one pair kind and one (lambda,
sigma)) are fitted together, each with its own regularization chosen by k-fold
cross-validation over whole molecules (so the mu components of a sample, and the pairs of one
molecule, never straddle training and validation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, kw_only=True)
class RidgeSettings:
    """alphas: regularization strengths relative to the mean eigenvalue of the (scaled) Gram
    matrix; n_folds: folds for choosing alpha; seed: fold assignment."""

    alphas: tuple[float, ...] = tuple(10.0 ** k for k in range(-12, 1))
    n_folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class RidgeFit:
    """Fitted weights for t targets sharing q features.

    weights: (q, t) for scaled features; scale: (q,) feature scale (one value: the block's RMS,
    which keeps the channels' relative sizes, so ridge damps the small high-order ones); feature_mean (q,) and
    intercept (t,) are zero unless fitted with an intercept; alphas: (t,) chosen alpha.
    """

    weights: torch.Tensor
    scale: torch.Tensor
    feature_mean: torch.Tensor
    intercept: torch.Tensor
    alphas: torch.Tensor

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """(n, 2 lambda + 1, q) -> (n, 2 lambda + 1, t): ((features - mean) / scale) W + intercept,
        with mean and scale folded into the (q, t) weights rather than applied to the features."""
        weights = self.weights / self.scale[:, None]
        return features.to(weights) @ weights + (self.intercept - self.feature_mean @ weights)

    def to(self, device: torch.device | str) -> RidgeFit:
        return RidgeFit(**{name: value.to(device) for name, value in self.state().items()})

    def state(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in ("weights", "scale", "feature_mean", "intercept", "alphas")}


def fit_ridge(features: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, *, intercept: bool,
              settings: RidgeSettings) -> RidgeFit:
    """Fit t targets on shared features, in float64.

    features (n, 2 lambda + 1, q); targets (n, 2 lambda + 1, t); groups (n,) the molecule of each
    sample (cross-validation folds never split a group).
    """
    x = features.to(torch.float64)
    y = targets.to(torch.float64)
    feature_mean, target_mean = _means(x, y, intercept)
    x, y = x - feature_mean, y - target_mean
    scale = x.pow(2).mean().sqrt().clamp_min(1e-12).expand(x.shape[-1]).clone()
    x = x / scale
    alphas = torch.as_tensor(settings.alphas, dtype=torch.float64, device=x.device)
    best = alphas[_cross_validation_errors(x, y, groups, alphas, settings).argmin(dim=0)]
    weights = _ridge_path(_rows(x), _rows(y), best, per_target=True)
    return RidgeFit(weights, scale, feature_mean, target_mean.reshape(-1), best)


def _means(x: torch.Tensor, y: torch.Tensor, intercept: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature (q,) and target (t,) means over samples, or zeros without an intercept."""
    if not intercept:
        return x.new_zeros(x.shape[-1]), y.new_zeros(y.shape[-1])
    if x.shape[1] != 1:
        raise ValueError("an intercept is only allowed for lambda = 0 blocks")
    return x.mean(dim=(0, 1)), y.mean(dim=(0, 1))


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """(n, 2 lambda + 1, k) -> (n (2 lambda + 1), k): each mu component is a row."""
    return tensor.reshape(-1, tensor.shape[-1])


def _cross_validation_errors(x, y, groups, alphas, settings: RidgeSettings) -> torch.Tensor:
    """(n_alphas, t) summed squared validation error over k folds of whole groups."""
    folds = _fold_of_each_sample(groups, settings)
    errors = x.new_zeros(len(alphas), y.shape[-1])
    for fold in folds.unique():
        train, valid = folds != fold, folds == fold
        path = _ridge_path(_rows(x[train]), _rows(y[train]), alphas, per_target=False)
        residual = _rows(y[valid])[None] - _rows(x[valid])[None] @ path
        errors += residual.pow(2).sum(dim=1)
    return errors


def _fold_of_each_sample(groups: torch.Tensor, settings: RidgeSettings) -> torch.Tensor:
    """(n,) fold index of each sample: whole groups are dealt to folds in a seeded random order."""
    unique, inverse = groups.unique(return_inverse=True)
    if len(unique) < 2:
        raise ValueError("cross-validation needs samples from at least two molecules")
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(settings.seed))
    fold_of_group = torch.empty_like(order)
    fold_of_group[order] = torch.arange(len(unique)) % min(settings.n_folds, len(unique))
    return fold_of_group.to(groups.device)[inverse]


def _ridge_path(x: torch.Tensor, y: torch.Tensor, alphas: torch.Tensor, per_target: bool) -> torch.Tensor:
    """Ridge solutions W = (X^T X + a s I)^-1 X^T Y from one eigendecomposition, where s is the
    mean eigenvalue of X^T X (so alphas are relative).

    x (N, q), y (N, t). per_target: alphas (t,) -> W (q, t); else alphas (k,) -> (k, q, t).
    Uses the primal (q x q) or dual (N x N) Gram matrix, whichever is smaller.
    """
    dual = x.shape[0] < x.shape[1]
    gram = x @ x.T if dual else x.T @ x
    eigenvalues, vectors = torch.linalg.eigh(gram)
    eigenvalues = eigenvalues.clamp_min(0.0)
    shift = alphas * (x.pow(2).sum() / x.shape[1]).clamp_min(1e-300)
    projected = vectors.T @ (y if dual else x.T @ y)
    if per_target:
        solution = vectors @ (projected / (eigenvalues[:, None] + shift[None, :]))
    else:
        solution = vectors @ (projected[None] / (eigenvalues[None, :, None] + shift[:, None, None]))
    return x.T @ solution if dual else solution
