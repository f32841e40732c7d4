"""Feature families of the N-centre model: atom-centred |rho_i^nu> and pair |rho_ij^nu>.

Every family returns :class:`EquivariantFeatures` whose (lam, sigma) blocks obey
block(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) block(x) for proper and improper rotations R,
are invariant under translations, and follow the atoms under permutations. Units: products of
density coefficients, Å^(-3/2) per factor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..structures import Structures
from .container import EquivariantFeatures
from .density import density_expansion, global_pair_indices, pair_density
from .products import couple
from .settings import DensitySettings


def atom_centered_features(structures: Structures, species: Sequence[int], settings: DensitySettings, *,
                           max_lambda: int, correlation_order: int) -> EquivariantFeatures:
    """|rho_i^nu; lam mu> of every atom, samples (system, i, i) in structure order.

    ``correlation_order`` 1: the density rho_i itself, blocks (l, +1) for l <= min(max_lambda,
    max_angular), len(species) * max_radial features. 2: rho_i coupled with itself
    (:func:`couple` with ``symmetric=True``: l1 <= l2, and for l1 == l2 only channel pairs
    c1 <= c2, or c1 < c2 for sigma = -1), both sigmas. No constant feature is added.
    """
    rho = density_expansion(structures, species, settings)
    if correlation_order == 1:
        blocks = {(l, 1): block for l, block in rho.items() if l <= max_lambda}
    elif correlation_order == 2:
        blocks = couple(rho, rho, max_lambda=max_lambda, symmetric=True)
    else:
        raise ValueError(f"correlation_order must be 1 or 2, got {correlation_order}")
    return EquivariantFeatures(_atom_samples(structures), blocks)


def pair_features(structures: Structures, species: Sequence[int], settings: DensitySettings,
                  pairs: torch.Tensor, *, max_lambda: int) -> EquivariantFeatures:
    """Features of ordered pairs ``pairs`` (n, 3) rows (system, i, j), i != j, local indices:
    |rho_ij^0; lam> = g_ij (blocks (l, +1), max_radial features) followed by
    |rho_ij^1; lam mu> = rho_i coupled with g_ij (both sigmas, len(species) * max_radial^2
    features per (l1, l2) with l1 from rho_i and l2 from g_ij)."""
    first, second = global_pair_indices(structures, pairs)
    if (first == second).any():
        raise ValueError("pair features need i != j; use atom_centered_features for i == j")
    rho_i = {l: block[first] for l, block in density_expansion(structures, species, settings).items()}
    g = pair_density(structures, pairs, settings)
    pairs = pairs.to(first.device)
    nu0 = EquivariantFeatures(pairs, {(l, 1): block for l, block in g.items() if l <= max_lambda})
    return nu0.concatenate(EquivariantFeatures(pairs, couple(rho_i, g, max_lambda=max_lambda)))


def symmetrized_pair_features(structures: Structures, species: Sequence[int], settings: DensitySettings,
                              pairs: torch.Tensor, *, max_lambda: int
                              ) -> tuple[EquivariantFeatures, EquivariantFeatures]:
    """(f_ij + f_ji) / sqrt(2) and (f_ij - f_ji) / sqrt(2) of same-element pairs (system, i, j),
    given with i < j, f = :func:`pair_features`. Samples are ``pairs``. Swapping i and j leaves
    the first unchanged and flips the sign of the second. ``ValueError`` for mixed-element pairs."""
    if not torch.equal(_pair_numbers(structures, pairs, 0), _pair_numbers(structures, pairs, 1)):
        raise ValueError("symmetrized pair features need two atoms of the same element")
    forward, backward = _both_directions(structures, species, settings, pairs, max_lambda=max_lambda)
    scale = 2.0 ** -0.5
    plus = {key: scale * (block + backward.blocks[key]) for key, block in forward.blocks.items()}
    minus = {key: scale * (block - backward.blocks[key]) for key, block in forward.blocks.items()}
    return EquivariantFeatures(forward.samples, plus), EquivariantFeatures(forward.samples, minus)


def ordered_pair_features(structures: Structures, species: Sequence[int], settings: DensitySettings,
                          pairs: torch.Tensor, *, max_lambda: int) -> EquivariantFeatures:
    """[f_ij, f_ji] along the feature axis for pairs (system, i, j) of different elements, i the
    atom of lower atomic number (``ValueError`` otherwise); f = :func:`pair_features`."""
    if not (_pair_numbers(structures, pairs, 0) < _pair_numbers(structures, pairs, 1)).all():
        raise ValueError("ordered pair features need the first atom of lower atomic number than the second")
    forward, backward = _both_directions(structures, species, settings, pairs, max_lambda=max_lambda)
    return forward.concatenate(EquivariantFeatures(forward.samples, backward.blocks))


def _both_directions(structures: Structures, species: Sequence[int], settings: DensitySettings,
                     pairs: torch.Tensor, *, max_lambda: int) -> tuple[EquivariantFeatures, EquivariantFeatures]:
    """:func:`pair_features` of ``pairs`` and of the swapped pairs (system, j, i), both with
    samples ``pairs``, from a single density expansion and a single coupling pass."""
    pairs = pairs.to(structures.ptr.device)
    both = torch.cat([pairs, pairs[:, [0, 2, 1]]])
    features = pair_features(structures, species, settings, both, max_lambda=max_lambda)
    forward = {key: block[:len(pairs)] for key, block in features.blocks.items()}
    backward = {key: block[len(pairs):] for key, block in features.blocks.items()}
    return EquivariantFeatures(pairs, forward), EquivariantFeatures(pairs, backward)


def _pair_numbers(structures: Structures, pairs: torch.Tensor, column: int) -> torch.Tensor:
    """(n,) atomic number of the first (column 0) or second (column 1) atom of each pair."""
    return structures.numbers[global_pair_indices(structures, pairs)[column]]


def _atom_samples(structures: Structures) -> torch.Tensor:
    """(n_atoms, 3) rows (system, i, i), i local to the system."""
    local = torch.arange(len(structures.numbers), device=structures.ptr.device) - structures.ptr[structures.system]
    return torch.stack([structures.system, local, local], dim=1)
