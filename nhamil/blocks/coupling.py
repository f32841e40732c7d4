"""Real Clebsch-Gordan coupling of a shell-pair block (2l1+1, 2l2+1) into (lambda, mu) channels."""

from __future__ import annotations

import math

import torch
from e3nn import o3


def clebsch_gordan(l1: int, l2: int, lam: int, like: torch.Tensor) -> torch.Tensor:
    """(2l1+1, 2l2+1, 2lam+1) real CG coefficients in canonical order, scaled so that the map
    (m1, m2) -> (lam, mu) over all lam is orthogonal; dtype and device of ``like``.

    e3nn's 3j symbols are float64-exact and equivariant in canonical order, since canonical
    harmonics are e3nn's evaluated on (y, z, x).
    """
    cg = o3.wigner_3j(l1, l2, lam, dtype=torch.float64) * math.sqrt(2 * lam + 1)
    return cg.to(dtype=like.dtype, device=like.device)


def couple(block: torch.Tensor, l1: int, l2: int, lam: int) -> torch.Tensor:
    """(n, 2l1+1, 2l2+1) -> (n, 2lam+1). Law: D_l1 X D_l2^T -> D_lam x."""
    return torch.einsum("nab,abk->nk", block, clebsch_gordan(l1, l2, lam, block))


def uncouple(values: torch.Tensor, l1: int, l2: int, lam: int) -> torch.Tensor:
    """(n, 2lam+1) -> (n, 2l1+1, 2l2+1): the inverse of ``couple`` summed over lam."""
    return torch.einsum("nk,abk->nab", values, clebsch_gordan(l1, l2, lam, values))
