"""Real Clebsch-Gordan coupling of a shell-pair block (2l1+1, 2l2+1) into (lambda, mu) channels."""

from __future__ import annotations

import torch

from ..orbitals import clebsch_gordan


def couple(block: torch.Tensor, l1: int, l2: int, lam: int) -> torch.Tensor:
    """(n, 2l1+1, 2l2+1) -> (n, 2lam+1). Law: D_l1 X D_l2^T -> D_lam x."""
    return torch.einsum("nab,abk->nk", block, clebsch_gordan(l1, l2, lam).to(block))


def uncouple(values: torch.Tensor, l1: int, l2: int, lam: int) -> torch.Tensor:
    """(n, 2lam+1) -> (n, 2l1+1, 2l2+1): the inverse of ``couple`` summed over lam."""
    return torch.einsum("nk,abk->nab", values, clebsch_gordan(l1, l2, lam).to(values))
