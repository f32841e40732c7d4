"""Sparse neighbour lists: atom pairs and triplets within a cutoff, found through a cell list.

Atoms are binned into cubes of side ``cutoff`` (per structure, so structures never see each
other); only atoms in the 27 cubes around an atom are candidates, so the work grows linearly with
the number of atoms at fixed density. Structures of at most ``_ALL_PAIRS_UP_TO`` atoms skip the
cell list: every pair of atoms of a structure is a candidate (fewer tensor operations, at most
``_ALL_PAIRS_UP_TO`` candidates per atom, about what 27 cells hold in a liquid; a single one is
read off its full distance matrix). The choice of pairs is never differentiated: gradients
flow through the vectors and distances of the chosen pairs only.
"""

from __future__ import annotations

import itertools

import torch

from ..structures import Structures

#: The 27 cell offsets (-1, 0, 1)^3.
_OFFSETS = tuple(itertools.product((-1, 0, 1), repeat=3))
#: Largest structure whose candidate pairs are all its atom pairs rather than the cell list's.
_ALL_PAIRS_UP_TO = 128


def neighbor_pairs(
    structures: Structures, cutoff: float, *, self_pairs: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global atom indices (first, second), each (n_pairs,), of every ordered pair of distinct atoms
    of the same structure closer than ``cutoff`` (Å), plus every self pair (i, i) if ``self_pairs``.

    Sorted by first, then second. Cost O(n_atoms * min(atoms per structure, atoms per 27 cells)).
    """
    positions = structures.positions.detach()
    if _is_one_small_structure(structures):
        return _pairs_within_one_structure(positions, cutoff, self_pairs)
    first, second, kept, _, _ = _candidates_within(structures, positions, cutoff, self_pairs)
    return first[kept], second[kept]


def _is_one_small_structure(structures: Structures) -> bool:
    """Whether ``structures`` is a single structure small enough for its all-pairs distance matrix."""
    return structures.n_systems == 1 and len(structures.numbers) <= _ALL_PAIRS_UP_TO


def _pairs_within_one_structure(
    positions: torch.Tensor, cutoff: float, self_pairs: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of :func:`neighbor_pairs` for the ``positions`` (n_atoms, 3), Å, of one small
    structure, from its full matrix of distances |r_j - r_i| (the same differences and norms as
    the other paths, so a pair at the cutoff is chosen alike): a handful of tensor operations,
    where a few microseconds per operation dominate."""
    near = (positions[None, :, :] - positions[:, None, :]).norm(dim=-1) < cutoff
    if not self_pairs:
        near.fill_diagonal_(False)
    first, second = near.nonzero().unbind(1)
    return first, second


def neighbor_displacements(
    structures: Structures, cutoff: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first, second, vectors, distances) of every ordered pair of distinct atoms closer than
    ``cutoff`` (Å): the pairs of ``neighbor_pairs(structures, cutoff, self_pairs=False)``, with
    vectors (n_pairs, 3) = r_second - r_first in Å and distances (n_pairs,) their lengths, both
    differentiable in the positions (the choice of pairs is not). Vectors rotate with the
    positions; translations leave them unchanged."""
    positions = structures.positions
    if _is_one_small_structure(structures):
        first, second = _pairs_within_one_structure(positions.detach(), cutoff, self_pairs=False)
        vectors = positions.index_select(0, second) - positions.index_select(0, first)
        return first, second, vectors, vectors.norm(dim=-1)
    first, second, kept, vectors, distances = _candidates_within(structures, positions, cutoff, False)
    return first[kept], second[kept], vectors[kept], distances[kept]


def _candidates_within(
    structures: Structures, positions: torch.Tensor, cutoff: float, self_pairs: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first, second, kept, vectors, distances): candidate pairs, the positions ``kept`` (long)
    among them of the pairs of :func:`neighbor_pairs` in its order, and every candidate's vector
    and distance from ``positions`` (n_atoms, 3), Å (a self pair's distance 0 < cutoff)."""
    first, second, valid, in_order = _candidates(structures, cutoff, self_pairs)
    vectors = positions.index_select(0, second) - positions.index_select(0, first)
    distances = vectors.norm(dim=-1)
    near = distances.detach() < cutoff
    kept = (near if valid is None else near & valid).nonzero().squeeze(1)
    if not in_order:
        kept = kept[torch.argsort(first[kept] * len(structures.numbers) + second[kept])]
    return first, second, kept, vectors, distances


def _candidates(
    structures: Structures, cutoff: float, self_pairs: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, bool]:
    """(first, second, valid, in_order): candidate pairs (global indices) that hold every pair of
    :func:`neighbor_pairs`, where ``valid`` (None: all) is true, whatever their distance; in_order
    says whether they come sorted by first, then second."""
    sizes = structures.ptr[1:] - structures.ptr[:-1]
    largest = int(sizes.max())
    if largest <= _ALL_PAIRS_UP_TO:
        first, second, valid = _all_pair_candidates(structures, sizes, largest)
        return first, second, valid if self_pairs else valid & (first != second), True
    first, second = _cell_candidates(structures, cutoff)
    return first, second, None if self_pairs else first != second, False


def neighbor_triplets(structures: Structures, cutoff: float) -> torch.Tensor:
    """(n, 4) long rows (system, i, j, k), local atom indices, of every centre i with two distinct
    neighbours j != k, both closer to i than ``cutoff`` (Å) and both != i; ordered by i, j, k.
    Both orders (j, k) and (k, j) are listed. Cost O(n_atoms * neighbours^2)."""
    first, second = neighbor_pairs(structures, cutoff)
    first, second = first[first != second], second[first != second]
    counts = torch.bincount(first, minlength=len(structures.numbers))
    start = torch.cumsum(counts, 0) - counts
    left, rank = _expand(counts[first])  # every pair (i, j) meets every neighbour k of i
    right = start[first[left]] + rank
    centre, j, k = first[left], second[left], second[right]
    keep = j != k
    centre, j, k = centre[keep], j[keep], k[keep]
    origin = structures.ptr[structures.system[centre]]
    return torch.stack([structures.system[centre], centre - origin, j - origin, k - origin], dim=1)


def _all_pair_candidates(
    structures: Structures, sizes: torch.Tensor, largest: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(first, second, valid), each (n_atoms * largest,): every atom i with the ``largest`` atoms
    from the first of its structure on (global indices, sorted by first, then second; the last
    repeated past the end), valid where the second is of i's structure. ``sizes`` (n_systems,):
    atoms per structure, ``largest`` their maximum."""
    n_atoms = len(structures.numbers)
    rank = torch.arange(largest, device=sizes.device)
    first = torch.arange(n_atoms, device=sizes.device)[:, None].expand(-1, largest).flatten()
    second = (structures.ptr[structures.system][:, None] + rank).clamp(max=n_atoms - 1).flatten()
    return first, second, (rank < sizes[structures.system][:, None]).flatten()


def _cell_candidates(structures: Structures, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) global indices of every ordered pair of atoms in the same or adjacent
    cells of side ``cutoff`` within one structure (self pairs included)."""
    positions = structures.positions.detach()
    device = positions.device
    lowest = torch.full((structures.n_systems, 3), float("inf"), dtype=positions.dtype, device=device)
    lowest = lowest.scatter_reduce(0, structures.system[:, None].expand(-1, 3), positions, reduce="amin")
    cell = torch.floor((positions - lowest[structures.system]) / cutoff).long() + 1  # >= 1: offsets stay >= 0
    dims = cell.max(dim=0).values + 2
    key = _cell_key(structures.system, cell, dims)
    order = torch.argsort(key)
    sorted_keys = key[order]
    offsets = torch.tensor(_OFFSETS, device=device)
    neighbor_keys = _cell_key(structures.system[:, None], cell[:, None, :] + offsets, dims)  # (n_atoms, 27)
    begin = torch.searchsorted(sorted_keys, neighbor_keys.flatten())
    counts = torch.searchsorted(sorted_keys, neighbor_keys.flatten(), right=True) - begin
    query, rank = _expand(counts)
    return query // len(_OFFSETS), order[begin[query] + rank]


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For counts (m,): (owner, rank), each (counts.sum(),), listing rank 0 .. counts[k] - 1 of
    every owner k in turn."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    return owner, torch.arange(len(owner), device=counts.device) - (torch.cumsum(counts, 0) - counts)[owner]


def _cell_key(system: torch.Tensor, cell: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
    """One integer per (system, cell): cell (..., 3) with 0 <= cell < dims."""
    return ((system * dims[0] + cell[..., 0]) * dims[1] + cell[..., 1]) * dims[2] + cell[..., 2]
