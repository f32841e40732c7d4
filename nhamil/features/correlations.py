"""Atom-centred density correlations |rho_i^nu; lam sigma> for nu = 1, 2, 3, optionally contracted.

nu = 1 is the density itself, nu = 2 its non-redundant self product, nu = 3 the product of the
(possibly contracted) nu = 2 features with the density again (the iterative construction of the
N-body iterative contraction scheme). Every (lam, sigma) block obeys
block(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) block(x). Units Å^(-3 nu / 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from ..structures import Structures
from .container import Key
from .contraction import ChannelContraction
from .density import density_expansion
from .products import couple
from .settings import DensitySettings

#: Highest correlation order of atom-centred features.
MAX_CORRELATION_ORDER = 3

Contractions = Mapping[int, ChannelContraction]


def density_correlations(
    rho: dict[int, torch.Tensor], *, order: int, max_lambda: int, contractions: Contractions | None = None
) -> dict[Key, torch.Tensor]:
    """(lam, sigma) -> (n_atoms, 2 lam + 1, f) blocks of |rho_i^order> for lam <= ``max_lambda``,
    from the density ``rho`` (l -> (n_atoms, 2l + 1, c), :func:`density_expansion`).

    order 2 keeps the non-redundant products (:func:`couple` ``symmetric``); order 3 couples the
    order-2 blocks up to lam = max_lambda + max l of ``rho`` with ``rho``. ``contractions[nu]``,
    where given, projects the order-nu blocks (also when they are an intermediate).
    """
    if not 1 <= order <= MAX_CORRELATION_ORDER:
        raise ValueError(f"correlation order must be 1 .. {MAX_CORRELATION_ORDER}, got {order}")
    if order == 1:
        blocks = {(l, 1): block for l, block in rho.items() if l <= max_lambda}
    elif order == 2:
        blocks = couple(rho, rho, max_lambda=max_lambda, symmetric=True)
    else:
        lower = density_correlations(rho, order=order - 1, max_lambda=max_lambda + max(rho), contractions=contractions)
        blocks = couple(lower, rho, max_lambda=max_lambda)
    contraction = (contractions or {}).get(order)
    return contraction(blocks) if contraction is not None else blocks


def fit_contractions(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    *,
    max_lambda: int,
    correlation_order: int,
    n_channels: int,
) -> dict[int, ChannelContraction]:
    """Contractions of orders 2 .. ``correlation_order`` fitted (PCA) on ``structures``, each order
    on the features built from the already contracted lower orders. Order nu covers lam up to
    max_lambda + (correlation_order - nu) * max_angular, the range that order
    ``correlation_order`` (or pair features of order correlation_order - 1) needs from it."""
    rho = density_expansion(structures, species, settings)
    contractions: dict[int, ChannelContraction] = {}
    for order in range(2, correlation_order + 1):
        lam = max_lambda + (correlation_order - order) * settings.max_angular
        blocks = density_correlations(rho, order=order, max_lambda=lam, contractions=contractions)
        contractions[order] = ChannelContraction.fit(blocks, n_channels=n_channels)
    return contractions
