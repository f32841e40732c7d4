"""Gaussian kernel ridge for the benchmarks' symmetry-agnostic baselines.

Not part of nhamil: the library's heads (``nhamil.heads``) are the equivariant ones. Regularization
alpha is relative to the kernel's mean diagonal (1 for a Gaussian kernel of rows).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def gaussian(first: torch.Tensor, second: torch.Tensor, width: float) -> torch.Tensor:
    """(n, m) exp(-|x_a - x_b|^2 / (2 w^2)) of rows (n, d) and (m, d)."""
    return torch.exp(-torch.cdist(first, second).square() / (2 * width**2))


def ridge_errors(
    kernel: torch.Tensor, targets: torch.Tensor, folds: Sequence[torch.Tensor], alphas: Sequence[float]
) -> torch.Tensor:
    """(len(alphas),) absolute validation errors of kernel ridge with centred targets, summed over
    ``folds`` (the validation samples of each fold) and targets: ``targets`` (n,) or (n, t),
    ``kernel`` (n, n). One eigendecomposition per fold serves every alpha."""
    columns = targets.reshape(len(targets), -1)
    errors = torch.zeros(len(alphas), dtype=kernel.dtype)
    shifts = torch.tensor(alphas, dtype=kernel.dtype)[:, None, None] * kernel.diagonal().mean()
    for validation in folds:
        train = torch.ones(len(targets), dtype=torch.bool)
        train[validation] = False
        mean = columns[train].mean(dim=0)
        eigenvalues, vectors = torch.linalg.eigh(kernel[train][:, train])
        projected = vectors.T @ (columns[train] - mean)
        weights = vectors @ (projected / (eigenvalues[:, None] + shifts))
        predicted = kernel[validation][:, train] @ weights + mean
        errors += (predicted - columns[validation]).abs().sum(dim=(1, 2))
    return errors


def ridge_solve(kernel: torch.Tensor, targets: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weights c of (K + alpha mean(diag K) I) c = targets, for targets (n,) or (n, t)."""
    regularized = kernel + alpha * kernel.diagonal().mean() * torch.eye(len(kernel), dtype=kernel.dtype)
    return torch.linalg.solve(regularized, targets)
