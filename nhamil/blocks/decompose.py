"""AO matrices <-> coupled equivariant blocks, batched over molecules and exactly invertible.

Matrices are in the canonical AO order of :mod:`nhamil.orbitals`, one (n_ao, n_ao) tensor per
molecule. All molecules are read and written through one flat vector, so each block is one
gather (or one scatter) whatever the number of molecules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ..orbitals import AtomicBasis, Shell
from .coupling import couple, uncouple
from .keys import HETERO, MINUS, ON_SITE, PLUS, Block, BlockKey, PairKind, ShellPair, placements

_SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class MatrixLayout:
    """Where each atom's AOs sit in a batch of molecules.

    numbers: (n_atoms,) atomic numbers of all molecules concatenated; atom_ptr: (n_systems+1,)
    first atom of each molecule; ao_offset: (n_atoms,) AO offset of each atom inside its
    molecule; n_ao: (n_systems,); flat_offset: (n_systems,) start of each matrix in the flat
    vector of all matrices; pair_lists: per molecule, the (n, 2) pairs i < j (local indices) that
    have blocks, or None for every pair (the blocks of the other pairs are exactly zero).
    """

    basis: AtomicBasis
    numbers: np.ndarray
    atom_ptr: np.ndarray
    ao_offset: np.ndarray
    n_ao: np.ndarray
    flat_offset: np.ndarray
    pair_lists: tuple[np.ndarray, ...] | None = None

    @classmethod
    def from_numbers(
        cls, basis: AtomicBasis, numbers: Sequence[Sequence[int]], pair_lists: Sequence[np.ndarray] | None = None
    ) -> MatrixLayout:
        """The layout of molecules of atomic numbers ``numbers``; ``pair_lists``: see the class."""
        numbers = [np.asarray(z, dtype=np.int64) for z in numbers]
        offsets = [basis.atom_offsets(z) for z in numbers]
        n_ao = np.array([o[-1] for o in offsets], dtype=np.int64)
        return cls(
            basis,
            np.concatenate(numbers),
            np.cumsum([0] + [len(z) for z in numbers]),
            np.concatenate([o[:-1] for o in offsets]),
            n_ao,
            np.cumsum(np.r_[0, n_ao * n_ao])[:-1],
            None if pair_lists is None else tuple(np.asarray(p, dtype=np.int64).reshape(-1, 2) for p in pair_lists),
        )

    @property
    def n_systems(self) -> int:
        return len(self.n_ao)

    def pairs(self) -> dict[PairKind, np.ndarray]:
        """Atom pairs of every molecule grouped by kind: {kind: (n, 3) rows (system, i, j)}.

        On-site (i, i); same-element pairs i < j under both +1 and -1; different-element
        pairs once, the lower atomic number first. Computed once per layout (prediction, its
        checks and the assembly all ask for them): treat the arrays as read-only.
        """
        return dict(self._pairs)

    @cached_property
    def _pairs(self) -> dict[PairKind, np.ndarray]:
        rows = np.concatenate([self._system_pairs(s) for s in range(self.n_systems)])
        z1 = self.numbers[self.atom_ptr[rows[:, 0]] + rows[:, 1]]
        z2 = self.numbers[self.atom_ptr[rows[:, 0]] + rows[:, 2]]
        grouped = {}
        for zi, zj in sorted(set(zip(z1.tolist(), z2.tolist(), strict=True))):
            chosen = rows[(z1 == zi) & (z2 == zj)]
            on_site = chosen[:, 1] == chosen[:, 2]
            if on_site.any():
                grouped[PairKind(ON_SITE, zi, zj)] = chosen[on_site]
            for block_type in (PLUS, MINUS) if zi == zj else (HETERO,):
                if (~on_site).any():
                    grouped[PairKind(block_type, zi, zj)] = chosen[~on_site]
        return grouped

    def _system_pairs(self, system: int) -> np.ndarray:
        """(n, 3) pairs i <= j of one molecule (all, or the on-site ones and its ``pair_lists``),
        swapped so that Z_first <= Z_second."""
        z = self.numbers[self.atom_ptr[system] : self.atom_ptr[system + 1]]
        if self.pair_lists is None:
            i, j = np.triu_indices(len(z))
        else:
            atoms = np.arange(len(z))
            i, j = np.r_[atoms, self.pair_lists[system][:, 0]], np.r_[atoms, self.pair_lists[system][:, 1]]
        swap = z[i] > z[j]
        first, second = np.where(swap, j, i), np.where(swap, i, j)
        return np.stack([np.full_like(first, system), first, second], axis=1)

    def shell_pairs(self, kind: PairKind) -> list[ShellPair]:
        """Shell pairs of a pair kind: all of them for different elements, a <= b otherwise."""
        first = self.basis.shells[kind.first_atom_type]
        second = self.basis.shells[kind.second_atom_type]
        return [
            ShellPair(kind, a, b)
            for ia, a in enumerate(first)
            for ib, b in enumerate(second)
            if kind.block_type == HETERO or ia <= ib
        ]

    def element_index(
        self, samples: np.ndarray, row_shell: Shell, col_shell: Shell, row_z: int, col_z: int, swap: bool = False
    ) -> torch.Tensor:
        """(n, 2l_row+1, 2l_col+1) flat indices of H[first row_shell, second col_shell] for each
        sample (system, first, second); with ``swap`` the rows sit on the second atom."""
        system, first, second = samples.T
        row_atom, col_atom = (second, first) if swap else (first, second)
        rows = self.ao_offset[self.atom_ptr[system] + row_atom] + self.basis.shell_offsets(row_z)[row_shell]
        cols = self.ao_offset[self.atom_ptr[system] + col_atom] + self.basis.shell_offsets(col_z)[col_shell]
        return torch.as_tensor(self.block_positions(system, rows, cols, row_shell.size, col_shell.size))

    def block_positions(
        self, system: np.ndarray, row_start: np.ndarray, col_start: np.ndarray, n_rows: int, n_cols: int
    ) -> np.ndarray:
        """(n, n_rows, n_cols) positions in the flat vector of all matrices of the blocks
        H[row_start + 0 .. n_rows - 1, col_start + 0 .. n_cols - 1] of molecules ``system`` (n,),
        ``row_start`` and ``col_start`` (n,) AO indices inside each molecule."""
        n_ao = self.n_ao[system][:, None, None]
        rows = (row_start[:, None] + np.arange(n_rows))[:, :, None]
        cols = (col_start[:, None] + np.arange(n_cols))[:, None, :]
        return self.flat_offset[system][:, None, None] + rows * n_ao + cols


def matrix_to_blocks(matrices: Sequence[torch.Tensor], layout: MatrixLayout) -> dict[BlockKey, Block]:
    """Coupled blocks of symmetric AO matrices (one (n_ao, n_ao) tensor per molecule of
    ``layout``). Law: under R, each block's values go to values @ D_lambda^T (with sigma)."""
    flat = _flatten(matrices, layout)
    blocks = {}
    for kind, samples in layout.pairs().items():
        for shell_pair in layout.shell_pairs(kind):
            uncoupled = _gather_shell_pair(flat, layout, shell_pair, samples)
            for lam in shell_pair.lambdas():
                l1, l2 = shell_pair.first_shell.l, shell_pair.second_shell.l
                blocks[BlockKey(shell_pair, lam)] = Block(torch.as_tensor(samples), couple(uncoupled, l1, l2, lam))
    return blocks


def blocks_to_matrices(blocks: dict[BlockKey, Block], layout: MatrixLayout) -> list[torch.Tensor]:
    """Inverse of :func:`matrix_to_blocks`: symmetric AO matrices, one per molecule. Blocks that
    are absent count as zero; each block enters linearly."""
    like = next(iter(blocks.values())).values
    indices, values = [], []
    for shell_pair, (samples, uncoupled) in _uncoupled_by_shell_pair(blocks).items():
        for index, part in _scatter_targets(layout, shell_pair, samples.cpu().numpy(), uncoupled):
            indices.append(index.reshape(-1))
            values.append(part.reshape(-1))
    flat = like.new_zeros(int((layout.n_ao**2).sum()))
    flat = flat.index_put((torch.cat(indices).to(flat.device),), torch.cat(values), accumulate=True)
    return _unflatten(flat, layout)


def _uncoupled_by_shell_pair(blocks: dict[BlockKey, Block]) -> dict[ShellPair, tuple[torch.Tensor, torch.Tensor]]:
    """Each shell pair's uncoupled block (n, 2l1+1, 2l2+1), summed over its lambda channels,
    with its samples (blocks of one shell pair must share samples)."""
    grouped: dict[ShellPair, tuple[torch.Tensor, torch.Tensor]] = {}
    for key, block in blocks.items():
        sp = key.shell_pair
        uncoupled = uncouple(block.values, sp.first_shell.l, sp.second_shell.l, key.o3_lambda)
        if sp in grouped:
            samples, total = grouped[sp]
            if not torch.equal(samples, block.samples):
                raise ValueError(f"blocks of shell pair {sp} have different samples")
            uncoupled = total + uncoupled
        grouped[sp] = (block.samples, uncoupled)
    return grouped


def _gather_shell_pair(flat: torch.Tensor, layout: MatrixLayout, sp: ShellPair, samples: np.ndarray) -> torch.Tensor:
    """(n, 2l1+1, 2l2+1) uncoupled block of one shell pair, permutation-adapted for +-1."""
    z1, z2 = sp.kind.first_atom_type, sp.kind.second_atom_type
    direct = flat[layout.element_index(samples, sp.first_shell, sp.second_shell, z1, z2).to(flat.device)]
    if sp.kind.block_type not in (PLUS, MINUS):
        return direct
    swapped = flat[layout.element_index(samples, sp.first_shell, sp.second_shell, z1, z2, swap=True).to(flat.device)]
    return (direct + sp.kind.block_type.mixing_sign * swapped) * _SQRT_HALF


def _scatter_targets(layout: MatrixLayout, sp: ShellPair, samples: np.ndarray, block: torch.Tensor):
    """(flat index, values) pairs through which one uncoupled block enters the matrices, by the
    placement law of :func:`~nhamil.blocks.keys.placements`."""
    z1, z2, a, b = sp.kind.first_atom_type, sp.kind.second_atom_type, sp.first_shell, sp.second_shell
    targets = []
    for place in placements(sp.kind.block_type, same_shell=a == b):
        rows, cols, values = (b, a, block.mT) if place.transposed else (a, b, block)
        row_z, col_z = (z2, z1) if place.transposed else (z1, z2)
        targets.append(
            (layout.element_index(samples, rows, cols, row_z, col_z, swap=place.swap_atoms), place.factor * values)
        )
    return targets


def _flatten(matrices: Sequence[torch.Tensor], layout: MatrixLayout) -> torch.Tensor:
    """One flat vector of all matrices, after checking their shapes against the layout."""
    if len(matrices) != layout.n_systems:
        raise ValueError(f"got {len(matrices)} matrices for {layout.n_systems} molecules")
    for s, (matrix, n) in enumerate(zip(matrices, layout.n_ao.tolist(), strict=True)):
        if tuple(matrix.shape) != (n, n):
            raise ValueError(
                f"matrix {s} has shape {tuple(matrix.shape)}, but basis "
                f"{layout.basis.name!r} gives {n} AOs for this molecule"
            )
    return torch.cat([torch.as_tensor(m).reshape(-1) for m in matrices])


def _unflatten(flat: torch.Tensor, layout: MatrixLayout) -> list[torch.Tensor]:
    sizes = (layout.n_ao**2).tolist()
    return [chunk.reshape(n, n) for chunk, n in zip(torch.split(flat, sizes), layout.n_ao.tolist(), strict=True)]
