"""A trainable torch linear head fitted by minibatches, for data too big for a closed-form solve.

Same model as the ridge head (Y = X W, W shared across mu, intercept only for invariant on-site
blocks), so it is exactly equivariant and reuses :class:`RidgeFit` for prediction and
checkpoints; only the fit differs: Adam on the mean squared error with an L2 penalty, over
shuffled minibatches of samples (the mu components of a sample stay together), never forming
the q x q Gram matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ridge import RidgeFit


@dataclass(frozen=True, kw_only=True)
class MinibatchSettings:
    """epochs; batch_size (samples); learning_rate (Adam); weight_decay: L2 penalty on the
    weights of block-RMS-scaled features; seed: shuffling and initialization."""

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1e-4
    weight_decay: float = 1e-8
    seed: int = 0


def fit_minibatch(features: torch.Tensor, targets: torch.Tensor, *, intercept: bool,
                  settings: MinibatchSettings) -> RidgeFit:
    """Fit t targets on shared features (n, 2 lambda + 1, q) -> (n, 2 lambda + 1, t), float64."""
    x, y = features.to(torch.float64), targets.to(torch.float64)
    feature_mean = x.mean(dim=(0, 1)) if intercept else x.new_zeros(x.shape[-1])
    target_mean = y.mean(dim=(0, 1)) if intercept else y.new_zeros(y.shape[-1])
    scale = (x - feature_mean).pow(2).mean().sqrt().clamp_min(1e-12).expand(x.shape[-1]).clone()
    x, y = (x - feature_mean) / scale, y - target_mean
    weights = _train(x, y, settings)
    return RidgeFit(weights, scale, feature_mean, target_mean, torch.full((y.shape[-1],), settings.weight_decay))


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
