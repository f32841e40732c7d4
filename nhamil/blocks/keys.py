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

from dataclasses import dataclass

import torch

from ..orbitals import Shell

ON_SITE, PLUS, MINUS, HETERO = 0, 1, -1, 2
BLOCK_TYPES = (ON_SITE, PLUS, MINUS, HETERO)


@dataclass(frozen=True, order=True)
class PairKind:
    """A family of atom pairs: ``block_type`` and the two atomic numbers (first <= second)."""

    block_type: int
    first_atom_type: int
    second_atom_type: int


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
    def equivariant(self) -> tuple[int, int]:
        """(o3_lambda, o3_sigma): the symmetry this block shares with its features."""
        return self.o3_lambda, self.o3_sigma

    def __str__(self) -> str:
        k, sp = self.kind, self.shell_pair
        return (f"type={k.block_type:+d} Z=({k.first_atom_type},{k.second_atom_type}) "
                f"{sp.first_shell.label}-{sp.second_shell.label} lambda={self.o3_lambda} sigma={self.o3_sigma:+d}")


@dataclass(frozen=True)
class Block:
    """Values of one coupled block.

    samples: (n, 3) long rows (system, first_atom, second_atom), atom indices local to the
    system; values: (n, 2 lambda + 1) in Hartree. Law: values(R x) = values(x) @ D^T with
    D = irrep_wigner(lambda, sigma (-1)^lambda, R).
    """

    samples: torch.Tensor
    values: torch.Tensor
