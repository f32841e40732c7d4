"""Coupled block values -> AO matrices through one precomputed linear map per group of atom pairs.

:func:`~nhamil.blocks.decompose.blocks_to_matrices` uncouples and scatters every (shell pair,
lambda) block on every call. At prediction time the blocks come from a fixed set of heads, so
the whole way from a sample's head outputs to its matrix elements is one fixed matrix per group
of pair kinds (it depends on the basis and the block keys, not on the molecules): assembling a
batch is then one matrix product per group and one scatter in all.

A group is all pairs of one on-site kind, of one different-element kind, or the + and - kinds of
one element pair (they share samples and matrix elements). A sample (system, i, j) owns the
elements of H[i, j] and, for i != j, of H[j, i] (all of them, even those that are zero): every
matrix element of every molecule belongs to exactly one sample of one group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..orbitals import AtomicBasis, Shell, clebsch_gordan
from .decompose import MatrixLayout
from .keys import MINUS, ON_SITE, BlockKey, PairKind, placements


def group_of(kind: PairKind) -> PairKind:
    """The group a pair kind's blocks are assembled with: a - kind goes with its + kind."""
    return kind.group


def _group_element_count(basis: AtomicBasis, group: PairKind) -> int:
    """E, the number of matrix elements one sample of ``group`` owns."""
    n_first, n_second = basis.atom_size(group.first_atom_type), basis.atom_size(group.second_atom_type)
    return n_first * n_first if group.block_type == ON_SITE else 2 * n_first * n_second


def element_transform(basis: AtomicBasis, group: PairKind, outputs: Sequence[Sequence[BlockKey]]) -> torch.Tensor:
    """(K, E) float64 map from one sample's head outputs to the E elements it owns.

    ``outputs``: the block keys of each head of the group, in the order their predictions
    (n, 2 lambda + 1, t) are flattened to (n, (2 lambda + 1) t) and concatenated (K columns).
    Row k holds where output k lands, uncoupled with the Clebsch-Gordan coefficients and
    placed as :func:`~nhamil.blocks.decompose.blocks_to_matrices` places it (transposes,
    and the (+ or -) / sqrt 2 mixing of the two atoms of same-element pairs).
    """
    transform = np.zeros(
        (sum(len(keys) * (2 * keys[0].o3_lambda + 1) for keys in outputs), _group_element_count(basis, group))
    )
    row = 0
    for keys in outputs:
        rows = row + np.arange((2 * keys[0].o3_lambda + 1) * len(keys)).reshape(-1, len(keys))
        for t, key in enumerate(keys):
            _place(transform, rows[:, t], basis, key)
        row += rows.size
    return torch.as_tensor(transform)


def _place(transform: np.ndarray, rows: np.ndarray, basis: AtomicBasis, key: BlockKey) -> None:
    """Add block ``key``'s uncoupling (its (2 lambda + 1) outputs at ``rows``) to ``transform``."""
    sp = key.shell_pair
    coefficients = clebsch_gordan(sp.first_shell.l, sp.second_shell.l, key.o3_lambda).numpy()
    for elements, transposed, factor in _placements(basis, sp.kind, sp.first_shell, sp.second_shell):
        grid = coefficients.transpose(1, 0, 2) if transposed else coefficients
        np.add.at(transform, (rows[None, None, :], elements[:, :, None]), factor * grid)


def _placements(basis: AtomicBasis, kind: PairKind, a: Shell, b: Shell) -> list[tuple[np.ndarray, bool, float]]:
    """Where the uncoupled block u (2 l_a + 1, 2 l_b + 1) of shells a (first atom i) and b
    (second atom j) lands, by the law of :func:`~nhamil.blocks.keys.placements`: (element
    indices of the grid, whether the grid is u^T, factor)."""
    return [
        (
            _elements(basis, kind, *((b, a) if place.transposed else (a, b)), transpose_block=place.swap_atoms),
            place.transposed,
            place.factor,
        )
        for place in placements(kind.block_type, same_shell=a == b)
    ]


def _elements(basis: AtomicBasis, kind: PairKind, row: Shell, col: Shell, *, transpose_block: bool) -> np.ndarray:
    """(2 l_row + 1, 2 l_col + 1) indices among a sample's elements of the rows of shell ``row``
    and columns of shell ``col``: in H[i, j] (on-site: H[i, i]), or with ``transpose_block`` in
    H[j, i], which follows H[i, j] in the sample's elements."""
    z_row, z_col = kind.first_atom_type, kind.second_atom_type
    if transpose_block:
        z_row, z_col = z_col, z_row
    n_row, n_col = basis.atom_size(z_row), basis.atom_size(z_col)
    first = basis.shell_offsets(z_row)[row] + np.arange(row.size)
    second = basis.shell_offsets(z_col)[col] + np.arange(col.size)
    return (n_col * n_row if transpose_block else 0) + first[:, None] * n_col + second[None, :]


def element_destinations(layout: MatrixLayout, group: PairKind, samples: np.ndarray) -> torch.Tensor:
    """(n, E) positions in the flat vector of all matrices (as in :func:`assemble`) of the
    elements owned by ``samples`` (n, 3) rows (system, i, j) of ``group``."""
    system, first, second = samples.T
    ao_first = layout.ao_offset[layout.atom_ptr[system] + first]
    ao_second = layout.ao_offset[layout.atom_ptr[system] + second]
    n_first, n_second = layout.basis.atom_size(group.first_atom_type), layout.basis.atom_size(group.second_atom_type)
    direct = layout.block_positions(system, ao_first, ao_second, n_first, n_second).reshape(len(samples), -1)
    if group.block_type == ON_SITE:
        return torch.as_tensor(direct)
    transpose = layout.block_positions(system, ao_second, ao_first, n_second, n_first).reshape(len(samples), -1)
    return torch.as_tensor(np.concatenate([direct, transpose], axis=1))


def assemble(values: dict[PairKind, torch.Tensor], layout: MatrixLayout) -> list[torch.Tensor]:
    """AO matrices, one (n_ao, n_ao) tensor per molecule of ``layout``, from the elements each
    group owns: ``values`` {group: (n, E)} for the samples that :func:`layout_groups` gives
    (together they cover every element of every matrix once, or, with the layout's
    ``pair_lists``, every element of the pairs listed, the others being zero)."""
    groups = layout_groups(layout)
    if set(values) != set(groups):
        raise ValueError(f"values are given for groups {sorted(values)}, the layout has {sorted(groups)}")
    destinations = torch.cat(
        [element_destinations(layout, group, samples).reshape(-1) for group, samples in groups.items()]
    )
    like = next(iter(values.values()))
    size = int((layout.n_ao**2).sum())
    flat = like.new_empty(size) if layout.pair_lists is None else like.new_zeros(size)  # pairs left out: zero
    flat[destinations.to(flat.device)] = torch.cat([values[group].reshape(-1) for group in groups])
    sizes = (layout.n_ao**2).tolist()
    return [chunk.reshape(n, n) for chunk, n in zip(torch.split(flat, sizes), layout.n_ao.tolist(), strict=True)]


def layout_groups(layout: MatrixLayout) -> dict[PairKind, np.ndarray]:
    """{group: (n, 3) samples (system, i, j)} of every group of ``layout``, in
    :meth:`MatrixLayout.pairs` order (a - kind adds nothing: its samples are its + kind's)."""
    return {kind: samples for kind, samples in layout.pairs().items() if kind.block_type != MINUS}
