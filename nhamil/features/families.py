"""Feature families of the N-centre model: atom-centred |rho_i^nu> and pair |rho_ij^nu>, |rho_ij^(1,1)>.

Every family returns :class:`EquivariantFeatures` whose (lam, sigma) blocks obey
block(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) block(x) for proper and improper rotations R,
are invariant under translations, and follow the atoms under permutations. Units: products of
density coefficients, Å^(-3/2) per factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..structures import Structures
from .container import EquivariantFeatures, Key
from .correlations import Contractions, density_correlations
from .density import density_expansion, global_pair_indices, pair_density
from .products import couple, coupled_parts, join_parts
from .settings import DensitySettings


def atom_centered_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    *,
    max_lambda: int,
    correlation_order: int,
    contractions: Contractions | None = None,
) -> EquivariantFeatures:
    """|rho_i^nu; lam mu> of every atom, samples (system, i, i) in structure order.

    ``correlation_order`` 1: the density rho_i itself, blocks (l, +1) for l <= min(max_lambda,
    max_angular), len(species) * max_radial features. 2: rho_i coupled with itself
    (:func:`couple` with ``symmetric=True``: l1 <= l2, and for l1 == l2 only channel pairs
    c1 <= c2, or c1 < c2 for sigma = -1), both sigmas. 3: the order-2 features coupled with rho_i
    (:func:`density_correlations`). ``contractions`` (order -> :class:`ChannelContraction`, from
    :func:`fit_contractions`) project orders 2 and 3. No constant feature is added.
    """
    rho = density_expansion(structures, species, settings)
    blocks = density_correlations(rho, order=correlation_order, max_lambda=max_lambda, contractions=contractions)
    return EquivariantFeatures(atom_samples(structures), blocks)


def pair_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    pairs: torch.Tensor,
    *,
    max_lambda: int,
    correlation_order: int = 1,
    both_centres: bool = False,
    contractions: Contractions | None = None,
    density: dict | None = None,
) -> EquivariantFeatures:
    """Features of ordered pairs ``pairs`` (n, 3) rows (system, i, j), i != j, local indices,
    concatenated in this order:
    |rho_ij^0; lam> = g_ij (blocks (l, +1), max_radial features);
    |rho_ij^nu; lam mu> = |rho_i^nu> coupled with g_ij for nu = 1 .. ``correlation_order`` (<= 2;
    both sigmas; for nu = 1, len(species) * max_radial^2 features per (l1, l2), l1 from rho_i and
    l2 from g_ij; ``contractions`` as in :func:`atom_centered_features`);
    with ``both_centres``, |rho_ij^(1,1)> of :func:`both_centre_pair_features`. ``density``:
    :func:`density_expansion` of the same structures, species and settings, if already computed.
    """
    first, second = global_pair_indices(structures, pairs)
    if (first == second).any():
        raise ValueError("pair features need i != j; use atom_centered_features for i == j")
    if not 1 <= correlation_order <= 2:
        raise ValueError(f"pair correlation order must be 1 or 2, got {correlation_order}")
    rho = density if density is not None else density_expansion(structures, species, settings)
    g = pair_density(structures, pairs, settings)
    parts = {(l, 1): [block] for l, block in g.items() if l <= max_lambda}
    centres, row = torch.unique(first, return_inverse=True)  # correlations of the pairs' own atoms only
    centre_rho = select_rows(rho, centres)
    for order in range(1, correlation_order + 1):
        rho_i = density_correlations(
            centre_rho, order=order, max_lambda=max_lambda + settings.max_angular, contractions=contractions
        )
        _extend(parts, coupled_parts(select_rows(rho_i, row), g, max_lambda=max_lambda))
    if both_centres:
        blocks = _both_centre_blocks(rho, g, first, second, max_lambda=max_lambda)
        _extend(parts, {key: [block] for key, block in blocks.items()})
    return EquivariantFeatures(pairs.to(first.device), join_parts(parts))


def _extend(parts: dict[Key, list[torch.Tensor]], more: dict[Key, list[torch.Tensor]]) -> None:
    for key, blocks in more.items():
        parts.setdefault(key, []).extend(blocks)


def both_centre_pair_features(
    structures: Structures, species: Sequence[int], settings: DensitySettings, pairs: torch.Tensor, *, max_lambda: int
) -> EquivariantFeatures:
    """|rho_ij^(1,1); lam mu> = ((rho_i coupled with g_ij)_k coupled with rho_j)_lam of ordered
    pairs (system, i, j), i != j: the pair decorated with both centres' environments.

    k runs to max_lambda + max_angular; features (c_i, n, c_j) per (l_i, l_g, k, l_j), c the
    len(species) * max_radial density channels, n the max_radial pair channels. Both sigmas.
    Swapping i and j is not a symmetry of a single block: use the symmetrized families.
    """
    first, second = global_pair_indices(structures, pairs)
    rho = density_expansion(structures, species, settings)
    g = pair_density(structures, pairs, settings)
    blocks = _both_centre_blocks(rho, g, first, second, max_lambda=max_lambda)
    return EquivariantFeatures(pairs.to(first.device), blocks)


def _both_centre_blocks(
    rho: dict, g: dict, first: torch.Tensor, second: torch.Tensor, *, max_lambda: int
) -> dict[Key, torch.Tensor]:
    """((rho[first] (x) g)_k (x) rho[second])_lam blocks, lam <= max_lambda."""
    left = couple(select_rows(rho, first), g, max_lambda=max_lambda + max(rho))
    return couple(left, select_rows(rho, second), max_lambda=max_lambda)


def select_rows(blocks: dict, index: torch.Tensor) -> dict:
    """The same keys, rows ``index`` of every block."""
    return {key: block[index] for key, block in blocks.items()}


def symmetrized_pair_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    pairs: torch.Tensor,
    *,
    max_lambda: int,
    correlation_order: int = 1,
    both_centres: bool = False,
    contractions: Contractions | None = None,
) -> tuple[EquivariantFeatures, EquivariantFeatures]:
    """(f_ij + f_ji) / sqrt(2) and (f_ij - f_ji) / sqrt(2) of same-element pairs (system, i, j),
    given with i < j, f = :func:`pair_features` (with the same options). Samples are ``pairs``. Swapping i and j leaves
    the first unchanged and flips the sign of the second. ``ValueError`` for mixed-element pairs."""
    if not torch.equal(_pair_numbers(structures, pairs, 0), _pair_numbers(structures, pairs, 1)):
        raise ValueError("symmetrized pair features need two atoms of the same element")
    forward, backward = both_directions(
        structures,
        species,
        settings,
        pairs,
        max_lambda=max_lambda,
        correlation_order=correlation_order,
        both_centres=both_centres,
        contractions=contractions,
    )
    return symmetrize(forward, backward)


def symmetrize(
    forward: EquivariantFeatures, backward: EquivariantFeatures
) -> tuple[EquivariantFeatures, EquivariantFeatures]:
    """(f_ij + f_ji) / sqrt(2) and (f_ij - f_ji) / sqrt(2) from the features of both directions
    of the same samples."""
    scale = 2.0**-0.5
    plus = {key: scale * (block + backward.blocks[key]) for key, block in forward.blocks.items()}
    minus = {key: scale * (block - backward.blocks[key]) for key, block in forward.blocks.items()}
    return EquivariantFeatures(forward.samples, plus), EquivariantFeatures(forward.samples, minus)


def ordered_pair_features(
    structures: Structures,
    species: Sequence[int],
    settings: DensitySettings,
    pairs: torch.Tensor,
    *,
    max_lambda: int,
    correlation_order: int = 1,
    both_centres: bool = False,
    contractions: Contractions | None = None,
) -> EquivariantFeatures:
    """[f_ij, f_ji] along the feature axis for pairs (system, i, j) of different elements, i the
    atom of lower atomic number (``ValueError`` otherwise); f = :func:`pair_features` (with the
    same options)."""
    if not (_pair_numbers(structures, pairs, 0) < _pair_numbers(structures, pairs, 1)).all():
        raise ValueError("ordered pair features need the first atom of lower atomic number than the second")
    forward, backward = both_directions(
        structures,
        species,
        settings,
        pairs,
        max_lambda=max_lambda,
        correlation_order=correlation_order,
        both_centres=both_centres,
        contractions=contractions,
    )
    return concatenate_directions(forward, backward)


def concatenate_directions(forward: EquivariantFeatures, backward: EquivariantFeatures) -> EquivariantFeatures:
    """[f_ij, f_ji] along the feature axis from the features of both directions of the same
    samples (pairs of different elements, whose atoms are told apart by their element)."""
    return forward.concatenate(EquivariantFeatures(forward.samples, backward.blocks))


def both_directions(
    structures: Structures, species: Sequence[int], settings: DensitySettings, pairs: torch.Tensor, **options
) -> tuple[EquivariantFeatures, EquivariantFeatures]:
    """:func:`pair_features` (keyword ``options``) of ``pairs`` and of the swapped pairs
    (system, j, i), both with samples ``pairs``, from a single density expansion and a single
    coupling pass."""
    pairs = pairs.to(structures.ptr.device)
    both = torch.cat([pairs, pairs[:, [0, 2, 1]]])
    features = pair_features(structures, species, settings, both, **options)
    forward = {key: block[: len(pairs)] for key, block in features.blocks.items()}
    backward = {key: block[len(pairs) :] for key, block in features.blocks.items()}
    return EquivariantFeatures(pairs, forward), EquivariantFeatures(pairs, backward)


def _pair_numbers(structures: Structures, pairs: torch.Tensor, column: int) -> torch.Tensor:
    """(n,) atomic number of the first (column 0) or second (column 1) atom of each pair."""
    return structures.numbers[global_pair_indices(structures, pairs)[column]]


def atom_samples(structures: Structures) -> torch.Tensor:
    """(n_atoms, 3) rows (system, i, i), i local to the system."""
    local = torch.arange(len(structures.numbers), device=structures.ptr.device) - structures.ptr[structures.system]
    return torch.stack([structures.system, local, local], dim=1)
