"""Atom-centred densities rho_i and single-neighbour densities g_ij on R_n(r) Y_lm(r^).

Symmetry law (both): for a proper or improper rotation R of all positions, the l block
transforms as X(R x) = irrep_wigner(l, (-1)**l, R) X(x) on its m axis (a proper tensor,
o3_sigma = +1); translations leave it unchanged and permuting atoms permutes its samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ase.data import chemical_symbols

from ..structures import Structures
from .harmonics import packed_real_harmonics
from .neighbors import neighbor_pairs
from .radial import cutoff_function, radial_integrals
from .settings import DensitySettings


def density_expansion(structures: Structures, species: Sequence[int],
                      settings: DensitySettings) -> dict[int, torch.Tensor]:
    """rho_i = sum_j f_cut(r_ij) I_nl(r_ij) Y_lm(r_ij^), with j's density in the channel of j's
    species (the self term j = i weighted by ``center_weight``, l = 0 only).

    ``species``: the sorted atomic numbers the model knows; channel c = species_index * max_radial
    + n. Returns l -> (n_atoms, 2l + 1, len(species) * max_radial) for l = 0 .. max_angular,
    units Å^(-3/2); atoms in the order of ``structures``. Raises ``ValueError`` naming any element
    of ``structures`` not in ``species``.
    """
    channel = species_index(structures.numbers, species)
    first, second = neighbor_pairs(structures, settings.cutoff)
    g = single_neighbor_density(structures, first, second, settings)
    return sum_by_neighbor_species(g, first, channel[second], n_atoms=len(structures.numbers),
                                   n_species=len(species))


def sum_by_neighbor_species(blocks: dict, first: torch.Tensor, neighbor_species: torch.Tensor, *,
                            n_atoms: int, n_species: int) -> dict:
    """Sum pair blocks key -> (n_pairs, 2 lam + 1, f) over the pairs of each atom ``first``
    (n_pairs,), separately per species index ``neighbor_species`` (n_pairs,) of the neighbour.
    Returns key -> (n_atoms, 2 lam + 1, n_species * f), species-major channels. Same law as the
    blocks (a sum of equivariants of one kind)."""
    slot = first * n_species + neighbor_species
    summed = {}
    for key, block in blocks.items():
        total = block.new_zeros(n_atoms * n_species, *block.shape[1:]).index_add_(0, slot, block)
        summed[key] = total.view(n_atoms, n_species, *block.shape[1:]).transpose(1, 2).flatten(2)
    return summed


def pair_density(structures: Structures, pairs: torch.Tensor,
                 settings: DensitySettings) -> dict[int, torch.Tensor]:
    """g_ij = f_cut(r_ij) I_nl(r_ij) Y_lm(r_ij^), the density of atom j alone seen from atom i.

    ``pairs`` (n_pairs, 3) long rows (system, i, j), atom indices local to the system. Zero beyond
    the cutoff; i = j gives the self term (``center_weight`` I_n0(0) Y_00, l = 0 only). Returns
    l -> (n_pairs, 2l + 1, max_radial), units Å^(-3/2). Law: summing g_ij over the j of one
    species (j = i included) gives that species' channel of :func:`density_expansion`.
    Swapping i and j multiplies the l block by (-1)**l.
    """
    first, second = global_pair_indices(structures, pairs)
    return single_neighbor_density(structures, first, second, settings)


def global_pair_indices(structures: Structures, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Global atom indices (first, second) of ``pairs`` (n, 3) rows (system, i, j) with local i, j.

    Raises ``ValueError`` if ``pairs`` is not (n, 3) or names a system or atom that does not exist.
    """
    if pairs.ndim != 2 or pairs.shape[1] != 3:
        raise ValueError(f"pairs must be (n_pairs, 3) rows (system, i, j), got shape {tuple(pairs.shape)}")
    pairs = pairs.to(structures.ptr.device)
    system, local = pairs[:, 0], pairs[:, 1:]
    if len(pairs) and (system.min() < 0 or system.max() >= structures.n_systems):
        raise ValueError(f"pairs name systems outside 0..{structures.n_systems - 1}")
    size = (structures.ptr[1:] - structures.ptr[:-1])[system]
    if ((local < 0) | (local >= size[:, None])).any():
        raise ValueError("pairs name atoms outside their system")
    start = structures.ptr[system]
    return start + local[:, 0], start + local[:, 1]


def species_index(numbers: torch.Tensor, species: Sequence[int]) -> torch.Tensor:
    """(n_atoms,) position of each atom's element in ``species``; ``ValueError`` naming any
    element of ``numbers`` that ``species`` lacks, or if ``species`` is not sorted and unique."""
    if list(species) != sorted(set(species)):
        raise ValueError(f"species must be sorted atomic numbers without repeats, got {list(species)}")
    unknown = sorted(set(numbers.unique().tolist()) - set(species))
    if unknown:
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
        raise ValueError(f"element(s) {names} not among the known species Z={list(species)}")
    lookup = torch.full((max(species) + 1,), -1, dtype=torch.long, device=numbers.device)
    lookup[torch.as_tensor(list(species), device=numbers.device)] = torch.arange(len(species), device=numbers.device)
    return lookup[numbers]


def single_neighbor_density(structures: Structures, first: torch.Tensor, second: torch.Tensor,
                            settings: DensitySettings) -> dict[int, torch.Tensor]:
    """l -> (n, 2l + 1, max_radial) density of atom ``second`` around atom ``first`` (global).

    A self pair has no direction: it uses a fixed unit vector, distance 0 (where I_nl = 0 for
    l > 0) and weight ``center_weight``, so no gradient passes through a zero-length vector.
    """
    positions = structures.positions
    vectors = positions.index_select(0, second) - positions.index_select(0, first)
    is_self = (first == second)[:, None]
    vectors = torch.where(is_self, vectors.new_tensor([0.0, 0.0, 1.0]), vectors)
    distances = torch.where(is_self[:, 0], 0.0, vectors.norm(dim=-1))
    weights = torch.where(is_self[:, 0], settings.center_weight, cutoff_function(distances, settings))
    radial = radial_integrals(distances, settings) * weights[:, None, None]
    harmonics = packed_real_harmonics(settings.max_angular, vectors)
    return {l: harmonics[:, l * l:(l + 1) ** 2, None] * radial[:, None, l] for l in range(settings.max_angular + 1)}
