"""Clebsch-Gordan products of equivariant features.

Keys. A feature dict maps (lam, sigma) -> (n, 2 lam + 1, n_channels), or l -> (n, 2l + 1,
n_channels) for a proper tensor (sigma = +1). The block (lam, sigma) transforms as
X(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) X(x) on its mu axis for a proper or improper
rotation R: sigma = +1 is a proper tensor, sigma = -1 a pseudotensor.

Coupling (l1 m1, l2 m2) -> (lam mu) uses e3nn's real Wigner 3j symbols (float64-exact) times
sqrt(2 lam + 1), so that the map from the (2 l1 + 1)(2 l2 + 1) products onto all lam is
orthogonal. They are equivariant in nhamil's canonical order because the canonical harmonics are
e3nn's evaluated on (y, z, x), a fixed change of basis that the 3j symbols are invariant under.
The product of (l1, sigma1) and (l2, sigma2) has sigma = sigma1 sigma2 (-1)^(l1 + l2 + lam).
"""

from __future__ import annotations

import functools

import torch

from ..orbitals import clebsch_gordan
from .container import Key


def couple(first: dict, second: dict, *, max_lambda: int, symmetric: bool = False) -> dict[Key, torch.Tensor]:
    """Couple every block of ``first`` with every block of ``second``, channel by channel.

    Blocks of both have the same n samples. Returns (lam, sigma) -> (n, 2 lam + 1, n_features)
    for lam <= ``max_lambda``: for each (lam, sigma) the products of key pairs (k1, k2) in sorted
    order, each with features c1 * n2 + c2 (all channel pairs, channel of ``first`` major).

    ``symmetric``: ``first`` and ``second`` are the same features, and only non-redundant products
    are kept: key pairs k1 <= k2 and, for k1 == k2, channel pairs c1 <= c2 when sigma = +1 and
    c1 < c2 when sigma = -1 (the product is symmetric, resp. antisymmetric, under c1 <-> c2;
    a swap of keys gives the same products up to sign).
    """
    return join_parts(coupled_parts(first, second, max_lambda=max_lambda, symmetric=symmetric))


def coupled_parts(
    first: dict, second: dict, *, max_lambda: int, symmetric: bool = False
) -> dict[Key, list[torch.Tensor]]:
    """The products of :func:`couple` before they are joined: (lam, sigma) -> its parts
    (n, 2 lam + 1, c1 c2), one per key pair, in order (for callers that join more parts)."""
    first, second = _with_sigma(first), _with_sigma(second)
    products: dict[Key, list[torch.Tensor]] = {}
    for k1 in sorted(first):
        for k2 in sorted(second):
            lambdas = range(abs(k1[0] - k2[0]), min(k1[0] + k2[0], max_lambda) + 1)
            if (symmetric and k2 < k1) or not lambdas:
                continue
            coupled = couple_blocks(first[k1], second[k2], lambdas)
            for lam, block in zip(lambdas, coupled.split([2 * lam + 1 for lam in lambdas], dim=1), strict=True):
                sigma = k1[1] * k2[1] * (-1) ** (k1[0] + k2[0] + lam)
                if symmetric and k1 == k2:
                    block = _upper_triangle(block, strict=sigma < 0)
                products.setdefault((lam, sigma), []).append(block.flatten(2))
    return products


def join_parts(parts: dict[Key, list[torch.Tensor]]) -> dict[Key, torch.Tensor]:
    """(lam, sigma) -> (n, 2 lam + 1, n_features): each key's parts along the feature axis."""
    return {key: torch.cat(parts[key], dim=-1) for key in sorted(parts)}


def couple_blocks(a: torch.Tensor, b: torch.Tensor, lambdas: range) -> torch.Tensor:
    """(n, M, c1, c2) coupling of a (n, 2 l1 + 1, c1) with b (n, 2 l2 + 1, c2) to every lam of
    ``lambdas``, stacked along M = sum (2 lam + 1) in that order:
    out[:, (lam, mu), c1, c2] = sum_{m1 m2} C_lam[m1, m2, mu] a[:, m1, c1] b[:, m2, c2]."""
    l1, l2 = (a.shape[1] - 1) // 2, (b.shape[1] - 1) // 2
    coefficients = _stacked_coefficients(l1, l2, lambdas.start, lambdas.stop).to(device=a.device, dtype=a.dtype)
    n, c1, (m2, big_m) = len(a), a.shape[-1], (2 * l2 + 1, coefficients.shape[0] // (2 * l2 + 1))
    partial = torch.matmul(coefficients, a).view(n, m2, big_m * c1).transpose(1, 2)
    return torch.bmm(partial, b).view(n, big_m, c1, b.shape[-1])


@functools.cache
def _stacked_coefficients(l1: int, l2: int, first_lambda: int, stop_lambda: int) -> torch.Tensor:
    """(m2 M, m1) Clebsch-Gordan coefficients of (l1, l2) for lam in [first_lambda, stop_lambda),
    stacked along M and laid out so that one matrix product with a (n, m1, c1) gives (n, m2, M, c1)."""
    stacked = torch.cat([clebsch_gordan(l1, l2, lam) for lam in range(first_lambda, stop_lambda)], dim=-1)
    return stacked.permute(1, 2, 0).reshape(-1, 2 * l1 + 1).contiguous()


def _with_sigma(features: dict) -> dict[Key, torch.Tensor]:
    """The same blocks keyed (l, sigma): an integer key l means (l, +1)."""
    return {(key, 1) if isinstance(key, int) else tuple(key): block for key, block in features.items()}


def _upper_triangle(block: torch.Tensor, *, strict: bool) -> torch.Tensor:
    """(n, 2 lam + 1, n_pairs) entries c1 <= c2 (c1 < c2 if ``strict``) of (n, 2 lam + 1, c, c)."""
    c1, c2 = torch.triu_indices(block.shape[-2], block.shape[-1], offset=int(strict), device=block.device)
    return block[..., c1, c2]
