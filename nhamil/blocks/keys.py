"""Metadata of equivariant Hamiltonian blocks: which atom pairs, which shells, which (lambda, sigma).

Block families (``block_type``):

- ``0``  on-site, i = i; shell pairs a <= b (the a > b blocks are transposes).
- ``+1`` / ``-1`` same-element pairs i < j, stored as (H_ij + H_ji)/sqrt(2) and (H_ij - H_ji)/sqrt(2)
  (for shells a <= b: P = H[i a, j b], Q = H[j a, i b], block = (P +- Q)/sqrt(2)).
- ``2``  different-element pairs, stored once as H[i a, j b] with Z_i < Z_j.

Each shell pair (n1 l1, n2 l2) is coupled to o3_lambda = |l1-l2| .. l1+l2 with
o3_sigma = (-1)^(l1+l2+lambda). When both shells are the same shell (a == b), the channels with
odd l1+l2+lambda vanish identically in on-site and +1 blocks, the even ones in -1 blocks: they
are neither stored nor fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import torch

from ..orbitals import Shell


class BlockType(IntEnum):
    """The block families; the values are the ``block_type`` numbers of the paper and metatensor."""

    ON_SITE = 0
    PLUS = 1
    MINUS = -1
    HETERO = 2

    @property
    def mixing_sign(self) -> int:
        """s in the same-element blocks (H_ij + s H_ji)/sqrt(2): +1 for PLUS, -1 for MINUS."""
        if self not in (BlockType.PLUS, BlockType.MINUS):
            raise ValueError(f"{self.name} blocks do not mix the two atoms of a pair")
        return 1 if self is BlockType.PLUS else -1


ON_SITE, PLUS, MINUS, HETERO = BlockType


class Equivariance(NamedTuple):
    """How a block or a feature block transforms: (o3_lambda, o3_sigma), featomic's convention.

    o3_sigma = +1 for a proper tensor, -1 for a pseudotensor; e3nn's parity of the same irrep is
    o3_sigma (-1)^o3_lambda. A plain (lambda, sigma) tuple compares and hashes equal to it."""

    o3_lambda: int
    o3_sigma: int

    @property
    def parity(self) -> int:
        """e3nn's parity p of the irrep (lambda, p): the sign it takes under inversion."""
        return self.o3_sigma * (-1) ** self.o3_lambda

    @classmethod
    def from_parity(cls, o3_lambda: int, parity: int) -> Equivariance:
        return cls(o3_lambda, parity * (-1) ** o3_lambda)


@dataclass(frozen=True, order=True)
class PairKind:
    """A family of atom pairs: ``block_type`` and the two atomic numbers (first <= second)."""

    block_type: BlockType
    first_atom_type: int
    second_atom_type: int

    def __post_init__(self):
        object.__setattr__(self, "block_type", BlockType(self.block_type))

    def to_dict(self) -> dict[str, int]:
        """Plain ints (a checkpoint loads with ``weights_only``); ``PairKind(**d)`` restores it."""
        return {
            "block_type": int(self.block_type),
            "first_atom_type": self.first_atom_type,
            "second_atom_type": self.second_atom_type,
        }

    @property
    def group(self) -> PairKind:
        """The kind whose samples and matrix elements this one shares: a MINUS kind's PLUS kind."""
        return PairKind(PLUS, self.first_atom_type, self.second_atom_type) if self.block_type == MINUS else self


@dataclass(frozen=True)
class Placement:
    """One place where an uncoupled block u (2 l_a + 1, 2 l_b + 1) of shell a on the pair's first
    atom i and shell b on its second atom j enters the AO matrix: ``factor`` u at H[i a, j b],
    or with ``swap_atoms`` at H[j a, i b]; with ``transposed``, ``factor`` u^T at H[i b, j a]
    (with ``swap_atoms`` H[j b, i a])."""

    transposed: bool
    swap_atoms: bool
    factor: float


def placements(block_type: BlockType, same_shell: bool) -> tuple[Placement, ...]:
    """The placement law of every block family, the one table that splitting matrices into
    blocks and assembling them both follow. ``same_shell``: a and b are the same shell (then
    H[i a, i a]'s own transpose, and the same-element mixing, add no new elements)."""
    if block_type == ON_SITE:
        direct = Placement(transposed=False, swap_atoms=False, factor=1.0)
        return (direct,) if same_shell else (direct, Placement(transposed=True, swap_atoms=False, factor=1.0))
    factor = 1.0 if block_type == HETERO else math.sqrt(0.5)
    pair = (
        Placement(transposed=False, swap_atoms=False, factor=factor),
        Placement(transposed=True, swap_atoms=True, factor=factor),
    )
    if block_type == HETERO or same_shell:
        return pair
    sign = block_type.mixing_sign * factor
    return (
        *pair,
        Placement(transposed=False, swap_atoms=True, factor=sign),
        Placement(transposed=True, swap_atoms=False, factor=sign),
    )


@dataclass(frozen=True, order=True)
class ShellPair:
    """An uncoupled block: a pair kind and one shell on each atom."""

    kind: PairKind
    first_shell: Shell
    second_shell: Shell

    def lambdas(self) -> list[int]:
        """The o3_lambda channels of this shell pair that are not zero by symmetry."""
        l1, l2 = self.first_shell.l, self.second_shell.l
        channels = range(abs(l1 - l2), l1 + l2 + 1)
        if self.kind.block_type == HETERO or self.first_shell != self.second_shell:
            return list(channels)
        keep_even = self.kind.block_type != MINUS
        return [lam for lam in channels if ((l1 + l2 + lam) % 2 == 0) == keep_even]


@dataclass(frozen=True, order=True)
class BlockKey:
    """Key of one coupled block: a shell pair and its (o3_lambda, o3_sigma)."""

    shell_pair: ShellPair
    o3_lambda: int

    @property
    def o3_sigma(self) -> int:
        return (-1) ** (self.shell_pair.first_shell.l + self.shell_pair.second_shell.l + self.o3_lambda)

    @property
    def kind(self) -> PairKind:
        return self.shell_pair.kind

    @property
    def equivariant(self) -> Equivariance:
        """(o3_lambda, o3_sigma): the symmetry this block shares with its features."""
        return Equivariance(self.o3_lambda, self.o3_sigma)

    def __str__(self) -> str:
        k, sp = self.kind, self.shell_pair
        return (
            f"type={k.block_type:+d} Z=({k.first_atom_type},{k.second_atom_type}) "
            f"{sp.first_shell.label}-{sp.second_shell.label} lambda={self.o3_lambda} sigma={self.o3_sigma:+d}"
        )


@dataclass(frozen=True)
class Block:
    """Values of one coupled block.

    samples: (n, 3) long rows (system, first_atom, second_atom), atom indices local to the
    system; values: (n, 2 lambda + 1) in Hartree. Law: values(R x) = values(x) @ D^T with
    D = irrep_wigner(lambda, sigma (-1)^lambda, R).
    """

    samples: torch.Tensor
    values: torch.Tensor
