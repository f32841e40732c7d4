"""A trainable torch linear head fitted by minibatches, for data too big for a closed-form solve.

Same model as the ridge head (Y = X W, W shared across mu, intercept only for invariant on-site
blocks), so it is exactly equivariant and returns a :class:`LinearFit` like ridge's (its
settings keep the weight decay); only the fit differs: Adam on the mean squared error with an
L2 penalty, over shuffled minibatches of samples (the mu components of a sample stay together), never solving
with all n samples at once. N-center features are strongly correlated, which leaves plain
gradient descent far from the optimum; the features are therefore whitened first, by the
inverse square root of their q x q covariance estimated on a seeded subsample of rows (a
transform of the feature axis only, the same for every mu, so the law Y(R x) = D Y(x) holds),
and the weights are mapped back afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ridge import LinearFit


@dataclass(frozen=True, kw_only=True)
class MinibatchSettings:
    """epochs; batch_size (samples); learning_rate (Adam); weight_decay: L2 penalty on the
    weights of the whitened features; seed: shuffling and the rows the whitening is estimated on."""

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-2
    weight_decay: float = 1e-8
    seed: int = 0


#: Rows (samples x mu components) the feature covariance is estimated on; eigenvalues below this
#: fraction of the largest are dropped from the whitening (directions the data barely spans).
_WHITENING_ROWS = 20_000
_WHITENING_FLOOR = 1e-12


def fit_minibatch(
    features: torch.Tensor, targets: torch.Tensor, *, intercept: bool, settings: MinibatchSettings
) -> LinearFit:
    """Fit t targets on shared features (n, 2 lambda + 1, q) -> (n, 2 lambda + 1, t), float64."""
    x, y = features.to(torch.float64), targets.to(torch.float64)
    feature_mean = x.mean(dim=(0, 1)) if intercept else x.new_zeros(x.shape[-1])
    target_mean = y.mean(dim=(0, 1)) if intercept else y.new_zeros(y.shape[-1])
    x, y = x - feature_mean, y - target_mean
    whitening = _whitening(x, settings.seed)
    weights = whitening @ _train(x @ whitening, y, settings)
    scale = x.new_ones(x.shape[-1])
    return LinearFit(weights, scale, feature_mean, target_mean)


def _whitening(x: torch.Tensor, seed: int) -> torch.Tensor:
    """(q, r) map V diag(s)^(-1/2) from the covariance V diag(s) V^T of the feature rows of ``x``
    (n, 2 lambda + 1, q), estimated on up to ``_WHITENING_ROWS`` rows drawn with ``seed``."""
    rows = x.reshape(-1, x.shape[-1])
    chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:_WHITENING_ROWS]
    sample = rows[chosen.to(rows.device)]
    eigenvalues, vectors = torch.linalg.eigh(sample.T @ sample / len(sample))
    keep = eigenvalues > _WHITENING_FLOOR * eigenvalues.max().clamp_min(1e-300)
    return vectors[:, keep] / eigenvalues[keep].sqrt()


def _train(x: torch.Tensor, y: torch.Tensor, settings: MinibatchSettings) -> torch.Tensor:
    """(q, t) weights minimizing mean squared error + weight_decay |W|^2 by Adam."""
    generator = torch.Generator().manual_seed(settings.seed)
    weights = torch.zeros(x.shape[-1], y.shape[-1], dtype=x.dtype, device=x.device, requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=settings.learning_rate)
    for _ in range(settings.epochs):
        for batch in torch.randperm(len(x), generator=generator).to(x.device).split(settings.batch_size):
            optimizer.zero_grad()
            loss = (x[batch] @ weights - y[batch]).pow(2).mean() + settings.weight_decay * weights.pow(2).sum()
            loss.backward()
            optimizer.step()
    return weights.detach()
