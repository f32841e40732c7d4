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

from dataclasses import dataclass, fields

import torch


@dataclass(frozen=True, kw_only=True)
class RidgeSettings:
    """alphas: regularization strengths relative to the mean eigenvalue of the (scaled) Gram
    matrix; n_folds: folds for choosing alpha; seed: fold assignment."""

    alphas: tuple[float, ...] = tuple(10.0**k for k in range(-12, 1))
    n_folds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class LinearFit:
    """Fitted mu-shared weights for t targets sharing q features (a :class:`~nhamil.heads.Head`).

    weights: (q, t) for scaled features; scale: (q,) feature scale (one value: the block's RMS,
    which keeps the channels' relative sizes, so ridge damps the small high-order ones); feature_mean (q,) and
    intercept (t,) are zero unless fitted with an intercept.
    """

    weights: torch.Tensor
    scale: torch.Tensor
    feature_mean: torch.Tensor
    intercept: torch.Tensor

    def predict(self, features: torch.Tensor, invariants: torch.Tensor | None = None) -> torch.Tensor:
        """(n, 2 lambda + 1, q) -> (n, 2 lambda + 1, t): ((features - mean) / scale) W + intercept,
        with mean and scale folded into the (q, t) weights rather than applied to the features.
        ``invariants`` are not used (the protocol passes them to every head)."""
        weights = self.weights / self.scale[:, None]
        return features.to(weights) @ weights + (self.intercept - self.feature_mean @ weights)

    def to(self, device: torch.device | str) -> LinearFit:
        return type(self)(**{name: value.to(device) for name, value in self.state().items()})

    def state(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> LinearFit:
        return cls(**state)


@dataclass(frozen=True)
class RidgeFit(LinearFit):
    """A :class:`LinearFit` from :func:`fit_ridge`, with alphas: (t,) the alpha chosen per target."""

    alphas: torch.Tensor


def fit_ridge(
    features: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, *, intercept: bool, settings: RidgeSettings
) -> RidgeFit:
    """Fit t targets on shared features, in float64.

    features (n, 2 lambda + 1, q); targets (n, 2 lambda + 1, t); groups (n,) the molecule of each
    sample (cross-validation folds never split a group). One Gram matrix serves every fold and
    the final solve, and the features are copied only to centre them (with an intercept).
    """
    x = features.to(torch.float64)
    y = targets.to(torch.float64)
    feature_mean, target_mean = _means(x, y, intercept)
    x, y = (x - feature_mean if intercept else x), y - target_mean
    scale = (torch.linalg.vector_norm(x) / x.numel() ** 0.5).clamp_min(1e-12).expand(x.shape[-1]).clone()
    gram = _Gram(_rows(x), _rows(y))
    alphas = torch.as_tensor(settings.alphas, dtype=torch.float64, device=x.device)
    rows_fold = fold_of_each_sample(groups, settings).repeat_interleave(x.shape[1])
    errors = sum(gram.validation_errors(rows_fold == fold, alphas) for fold in rows_fold.unique())
    best = alphas[errors.argmin(dim=0)]
    return RidgeFit(gram.solve(best) * scale[:, None], scale, feature_mean, target_mean.reshape(-1), best)


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


def fold_of_each_sample(groups: torch.Tensor, settings: RidgeSettings) -> torch.Tensor:
    """(n,) fold index of each sample: whole groups are dealt to folds in a seeded random order."""
    unique, inverse = groups.unique(return_inverse=True)
    if len(unique) < 2:
        raise ValueError("cross-validation needs samples from at least two molecules")
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(settings.seed))
    fold_of_group = torch.empty_like(order)
    fold_of_group[order] = torch.arange(len(unique)) % min(settings.n_folds, len(unique))
    return fold_of_group.to(groups.device)[inverse]


class _Gram:
    """Ridge solutions W = (X^T X + a s I)^-1 X^T Y for rows X (N, q), targets Y (N, t), where
    s = trace(X^T X) / q makes alpha relative, from one Gram matrix: the dual X X^T (N x N) when
    N < q, else the primal X^T X (q x q). Rows left out for validation are taken out of it (dual:
    its sub-matrix; primal: their own products subtracted), never by copying X."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y, self.dual = x, y, x.shape[0] < x.shape[1]
        self.gram = x @ x.T if self.dual else x.T @ x
        self.moment = None if self.dual else x.T @ y

    def validation_errors(self, valid: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        """(n_alphas, t) squared errors on the rows ``valid`` (bool, (N,)) of the fit on the others."""
        train = ~valid
        if self.dual:
            coefficients = self._coefficients(self.gram[train][:, train], self.y[train], alphas[:, None, None])
            predicted = self.gram[valid][:, train] @ coefficients
        else:
            x_valid = self.x[valid]
            weights = self._coefficients(
                self.gram - x_valid.T @ x_valid, self.moment - x_valid.T @ self.y[valid], alphas[:, None, None]
            )
            predicted = x_valid @ weights
        return (self.y[valid] - predicted).pow(2).sum(dim=1)

    def solve(self, alphas: torch.Tensor) -> torch.Tensor:
        """(q, t) weights on all rows, one alpha (t,) per target."""
        if self.dual:
            return self.x.T @ self._coefficients(self.gram, self.y, alphas)
        return self._coefficients(self.gram, self.moment, alphas)

    def _coefficients(self, gram: torch.Tensor, right: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
        return ridge_coefficients(gram, right, alphas, self.x.shape[1])


def ridge_coefficients(gram: torch.Tensor, right: torch.Tensor, alphas: torch.Tensor, n_features: int) -> torch.Tensor:
    """(gram + alpha s I)^-1 right (m, t), s = trace(gram) / n_features, through one
    eigendecomposition: alphas (k, 1, 1) give (k, m, t), one solution per alpha; alphas (t,) give
    (m, t), one alpha per column."""
    eigenvalues, vectors = torch.linalg.eigh(gram)
    shift = alphas * (gram.diagonal().sum() / n_features).clamp_min(1e-300)
    return vectors @ ((vectors.T @ right) / (eigenvalues.clamp_min(0.0)[:, None] + shift))
