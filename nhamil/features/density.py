"""Atom-centred densities rho_i and single-neighbour densities g_ij on R_n(r) Y_lm(r^).

Symmetry law (both): for a proper or improper rotation R of all positions, the l block
transforms as X(R x) = irrep_wigner(l, (-1)**l, R) X(x) on its m axis (a proper tensor,
o3_sigma = +1); translations leave it unchanged and permuting atoms permutes its samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from ase.data import chemical_symbols

from ..structures import Structures
from .harmonics import packed_real_harmonics
from .neighbors import neighbor_displacements
from .radial import cutoff_function, radial_integrals
from .settings import DensitySettings

#: Pairs whose packed densities are summed at once: the temporaries stay small enough to be reused
#: from call to call rather than freshly mapped (page faults cost more than the sum at 10^4 pairs).
_PAIRS_PER_CHUNK = 1024


def density_expansion(
    structures: Structures, species: Sequence[int], settings: DensitySettings
) -> dict[int, torch.Tensor]:
    """rho_i = sum_j f_cut(r_ij) I_nl(r_ij) Y_lm(r_ij^), with j's density in the channel of j's
    species (the self term j = i weighted by ``center_weight``, l = 0 only).

    ``species``: the sorted atomic numbers the model knows; channel c = species_index * max_radial
    + n. Returns l -> (n_atoms, 2l + 1, len(species) * max_radial) for l = 0 .. max_angular,
    units Å^(-3/2); atoms in the order of ``structures``. Raises ``ValueError`` naming any element
    of ``structures`` not in ``species``.
    """
    channel = species_index(structures.numbers, species)
    first, second, vectors, distances = neighbor_displacements(structures, settings.cutoff)
    n_atoms, n_species = len(channel), len(species)
    own = _own_density_table(settings, n_species, vectors.dtype, vectors.device)
    sums = own.index_select(0, channel).flatten(0, 1)  # (n_atoms * n_species, n_columns, max_radial)
    slot = first * n_species + channel.index_select(0, second)
    for start in range(0, len(first), _PAIRS_PER_CHUNK):
        chunk = slice(start, start + _PAIRS_PER_CHUNK)
        sums.index_add_(0, slot[chunk], packed_neighbor_density(vectors[chunk], distances[chunk], settings))
    per_atom = _species_major(sums, n_atoms, n_species)
    return dict(enumerate(per_atom.split(_columns_per_degree(settings.max_angular), dim=1)))


def packed_neighbor_density(vectors: torch.Tensor, distances: torch.Tensor, settings: DensitySettings) -> torch.Tensor:
    """(n, (max_angular + 1)^2, max_radial) densities f_cut I_nl Y_lm of neighbours at ``vectors``
    (n, 3) from their centres, of lengths ``distances`` (n,) > 0, Å; all l in one tensor: Y_l in
    columns l^2 .. (l + 1)^2 - 1, each times I_nl. Law: the columns of one l rotate by
    irrep_wigner(l, (-1)**l, R)."""
    weights = cutoff_function(distances, settings)
    harmonics, radial = _weighted_harmonics_and_radial(vectors, distances, distances, weights, settings)
    return _packed_product(harmonics, radial)


def _weighted_harmonics_and_radial(
    vectors: torch.Tensor,
    lengths: torch.Tensor,
    distances: torch.Tensor,
    weights: torch.Tensor,
    settings: DensitySettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights * Y_lm(vectors) packed (n, (max_angular + 1)^2), I_nl(distances) (n, max_angular + 1,
    max_radial)) for ``vectors`` (n, 3) of norms ``lengths`` (n,) > 0, ``distances`` and
    ``weights`` (n,)."""
    harmonics = packed_real_harmonics(settings.max_angular, vectors, lengths) * weights[:, None]
    return harmonics, radial_integrals(distances, settings)


def _packed_product(harmonics: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
    """(n, (max_l + 1)^2, max_radial): each packed harmonic column (n, (max_l + 1)^2) times the
    radial integrals (n, max_l + 1, max_radial) of its l."""
    degree = _degree_of_column(radial.shape[1] - 1, harmonics.device)
    return harmonics[:, :, None] * radial.index_select(1, degree)


@lru_cache(maxsize=16)
def _degree_of_column(max_l: int, device: torch.device) -> torch.Tensor:
    """((max_l + 1)^2,) long: l of each column l^2 .. (l + 1)^2 - 1 of packed harmonics."""
    return torch.repeat_interleave(torch.arange(max_l + 1), 2 * torch.arange(max_l + 1) + 1).to(device)


@lru_cache(maxsize=16)
def _own_density_table(
    settings: DensitySettings, n_species: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(n_species, n_species, (max_angular + 1)^2, max_radial): [s] is the density of a centre of
    species index s's own Gaussian, center_weight I_n0(0) Y_00 (the harmonic of any direction,
    l = 0 being constant), in its column 0 and species s's channels, zero elsewhere."""
    y00 = packed_real_harmonics(0, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))[0, 0]
    own = settings.center_weight * y00 * radial_integrals(torch.zeros(1, dtype=torch.float64), settings)[0, 0]
    table = torch.zeros(n_species, n_species, (settings.max_angular + 1) ** 2, settings.max_radial, dtype=torch.float64)
    table[range(n_species), range(n_species), 0] = own
    return table.to(device=device, dtype=dtype)


def sum_by_neighbor_species(
    blocks: dict, first: torch.Tensor, neighbor_species: torch.Tensor, *, n_atoms: int, n_species: int
) -> dict:
    """Sum pair blocks key -> (n_pairs, 2 lam + 1, f) over the pairs of each atom ``first``
    (n_pairs,), separately per species index ``neighbor_species`` (n_pairs,) of the neighbour.
    Returns key -> (n_atoms, 2 lam + 1, n_species * f), species-major channels. Same law as the
    blocks (a sum of equivariants of one kind)."""
    slot = first * n_species + neighbor_species
    summed = {}
    for key, block in blocks.items():
        total = block.new_zeros(n_atoms * n_species, *block.shape[1:]).index_add_(0, slot, block)
        summed[key] = _species_major(total, n_atoms, n_species)
    return summed


def _species_major(sums: torch.Tensor, n_atoms: int, n_species: int) -> torch.Tensor:
    """(n_atoms, k, n_species * f) from per-(atom, species) sums (n_atoms * n_species, k, f), row
    atom * n_species + species: the channels of one species next to each other."""
    return sums.view(n_atoms, n_species, *sums.shape[1:]).transpose(1, 2).flatten(2)


def pair_density(structures: Structures, pairs: torch.Tensor, settings: DensitySettings) -> dict[int, torch.Tensor]:
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
    if structures.n_systems == 1:
        return _single_structure_pair_indices(pairs, len(structures.numbers))
    system, local = pairs[:, 0], pairs[:, 1:]
    if len(pairs) and (system.min() < 0 or system.max() >= structures.n_systems):
        raise ValueError(f"pairs name systems outside 0..{structures.n_systems - 1}")
    size = (structures.ptr[1:] - structures.ptr[:-1])[system]
    if ((local < 0) | (local >= size[:, None])).any():
        raise ValueError("pairs name atoms outside their system")
    start = structures.ptr[system]
    return start + local[:, 0], start + local[:, 1]


def _single_structure_pair_indices(pairs: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(i, j) columns of ``pairs`` (n, 3) rows (0, i, j) of a structure of ``n_atoms`` atoms, whose
    local indices are global; ``ValueError`` for a system other than 0 or an atom outside it."""
    if len(pairs):
        low, high = (bound.tolist() for bound in torch.aminmax(pairs, dim=0))
        if low[0] != 0 or high[0] != 0:
            raise ValueError("pairs name systems outside 0..0")
        if min(low) < 0 or max(high) >= n_atoms:
            raise ValueError("pairs name atoms outside their system")
    return pairs[:, 1], pairs[:, 2]


def species_index(numbers: torch.Tensor, species: Sequence[int]) -> torch.Tensor:
    """(n_atoms,) position of each atom's element in ``species``; ``ValueError`` naming any
    element of ``numbers`` that ``species`` lacks, or if ``species`` is not sorted and unique."""
    if list(species) != sorted(set(species)):
        raise ValueError(f"species must be sorted atomic numbers without repeats, got {list(species)}")
    lookup = _species_lookup(tuple(species), numbers.device)
    channel = lookup[numbers.clamp(-1, len(lookup) - 1)]  # -1 and beyond the table: its last slot, -1
    if bool((channel < 0).any()):
        unknown = sorted(set(numbers.unique().tolist()) - set(species))
        names = ", ".join(f"{chemical_symbols[z] if 0 <= z < len(chemical_symbols) else '?'} (Z={z})" for z in unknown)
        raise ValueError(f"element(s) {names} not among the known species Z={list(species)}")
    return channel


@lru_cache(maxsize=16)
def _species_lookup(species: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """(max(species) + 2,) long: position in ``species`` of each atomic number, -1 for the others
    (the last slot always -1)."""
    lookup = torch.full((max(species) + 2,), -1, dtype=torch.long)
    lookup[list(species)] = torch.arange(len(species))
    return lookup.to(device)


def single_neighbor_density(
    structures: Structures, first: torch.Tensor, second: torch.Tensor, settings: DensitySettings
) -> dict[int, torch.Tensor]:
    """l -> (n, 2l + 1, max_radial) density of atom ``second`` around atom ``first`` (global).

    A self pair has no direction: it uses the fixed vector (1, 1, 1), distance 0 (where I_nl = 0 for
    l > 0) and weight ``center_weight``, so no gradient passes through a zero-length vector.
    """
    positions = structures.positions
    vectors = positions.index_select(0, second) - positions.index_select(0, first)
    is_self = first == second
    vectors = vectors + is_self[:, None]  # a self pair's (0, 0, 0) becomes (1, 1, 1)
    lengths = vectors.norm(dim=-1)  # no zero-length vector is differentiated
    distances = lengths.masked_fill(is_self, 0.0)
    weights = cutoff_function(distances, settings)  # 1 at distance 0, as cutoff_width <= cutoff
    if settings.center_weight != 1.0:
        weights = weights.masked_fill(is_self, settings.center_weight)
    harmonics, radial = _weighted_harmonics_and_radial(vectors, lengths, distances, weights, settings)
    if len(first) <= _PAIRS_PER_CHUNK:
        return dict(enumerate(_packed_product(harmonics, radial).split(_columns_per_degree(settings.max_angular), 1)))
    return {l: harmonics[:, l * l : (l + 1) ** 2, None] * radial[:, None, l] for l in range(settings.max_angular + 1)}


def _columns_per_degree(max_l: int) -> list[int]:
    """[1, 3, .., 2 max_l + 1]: the packed harmonic columns of each l."""
    return [2 * l + 1 for l in range(max_l + 1)]
