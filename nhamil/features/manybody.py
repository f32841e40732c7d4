"""Features of more than one neighbour at a time: triplets |rho_{i i1 i2}> and the message-passing
on-site features |rho_i^[1<-1]>.

Both obey block(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) block(x) for proper and improper
rotations R, are invariant under translations, and follow the atoms under permutations.
Units Å^(-9/2) (three density factors).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..structures import Structures
from .container import EquivariantFeatures
from .density import (
    density_expansion,
    global_pair_indices,
    single_neighbor_density,
    species_index,
    sum_by_neighbor_species,
)
from .families import atom_samples, select_rows
from .neighbors import neighbor_pairs
from .products import couple
from .settings import DensitySettings


def triplet_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    triplets: torch.Tensor,
    *,
    max_lambda: int = 0,
) -> EquivariantFeatures:
    """|rho_{i i1 i2}; lam mu> = ((g_ii1 (x) g_ii2)_k (x) rho_i)_lam of triplets (n, 4) rows
    (system, i, i1, i2), local indices (e.g. :func:`neighbor_triplets`).

    k runs to max_lambda + max_angular; features (n1, n2, c) per (l1, l2, k, l), n1, n2 the
    max_radial channels of the two tagged neighbours and c the density channels of rho_i. With
    ``max_lambda`` 0 (default) these are the invariants of both parities, (0, +1) and the
    pseudoscalars (0, -1), which the completeness study of Nigam et al. uses to resolve structures
    that every atom-centred descriptor of finite order confuses. Samples are ``triplets``.
    """
    if triplets.ndim != 2 or triplets.shape[1] != 4:
        raise ValueError(f"triplets must be (n, 4) rows (system, i, i1, i2), got shape {tuple(triplets.shape)}")
    centre, first = global_pair_indices(structures, triplets[:, [0, 1, 2]])
    _, second = global_pair_indices(structures, triplets[:, [0, 1, 3]])
    neighbors = couple(
        single_neighbor_density(structures, centre, first, settings),
        single_neighbor_density(structures, centre, second, settings),
        max_lambda=max_lambda + settings.max_angular,
    )
    rho = density_expansion(structures, species, settings)
    blocks = couple(neighbors, select_rows(rho, centre), max_lambda=max_lambda)
    return EquivariantFeatures(triplets.to(centre.device), blocks)


def message_passing_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    *,
    max_lambda: int,
    density: dict | None = None,
) -> EquivariantFeatures:
    """|rho_i^[1<-1]; lam mu> = (rho_i (x) M_i^a)_lam with the message M_i^a = sum over the
    neighbours j != i of element a, closer than the cutoff, of (g_ij (x) rho_j)_k.

    That is the contraction over j of the both-centre pair features |rho_ij^(1,1)>, recoupled
    (the same span per (l_i, l_g, l_j) and lam, through an orthogonal 6j recoupling). k runs to
    max_lambda + max_angular; channels (c_i, a, n, c_j). Samples (system, i, i), structure order.
    ``density``: :func:`density_expansion` of the same structures, species and settings, if
    already computed.
    """
    first, second = neighbor_pairs(structures, settings.cutoff)
    first, second = first[first != second], second[first != second]
    rho = density if density is not None else density_expansion(structures, species, settings)
    pair_messages = couple(
        single_neighbor_density(structures, first, second, settings),
        select_rows(rho, second),
        max_lambda=max_lambda + settings.max_angular,
    )
    messages = sum_by_neighbor_species(
        pair_messages,
        first,
        species_index(structures.numbers, species)[second],
        n_atoms=len(structures.numbers),
        n_species=len(species),
    )
    return EquivariantFeatures(atom_samples(structures), couple(rho, messages, max_lambda=max_lambda))
