"""A batch of molecules as flat tensors, the input of every feature function."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch


@dataclass(frozen=True)
class Structures:
    """Atoms of several molecules, concatenated.

    positions: (n_atoms, 3) in Å; numbers: (n_atoms,) atomic numbers; system: (n_atoms,) index
    of the molecule each atom belongs to (sorted); ptr: (n_systems + 1,) offset of each
    molecule's first atom. Atom indices in samples are local to their molecule.
    """

    positions: torch.Tensor
    numbers: torch.Tensor
    system: torch.Tensor
    ptr: torch.Tensor

    @classmethod
    def from_atoms(cls, frames: Sequence[ase.Atoms], dtype: torch.dtype = torch.float64,
                   device: torch.device | str = "cpu") -> Structures:
        """Batch a list of ``ase.Atoms`` (positions in Å; cell and pbc are ignored)."""
        if isinstance(frames, ase.Atoms):
            frames = [frames]
        sizes = [len(a) for a in frames]
        if not frames or min(sizes) == 0:
            raise ValueError("need at least one structure, and no empty structure")
        fields = (np.concatenate([a.positions for a in frames]), np.concatenate([a.numbers for a in frames]),
                  np.repeat(np.arange(len(sizes)), sizes), np.array([0, *itertools.accumulate(sizes)]))
        dtypes = (dtype, torch.long, torch.long, torch.long)
        return cls(*(torch.from_numpy(field).to(device=device, dtype=kind) for field, kind in zip(fields, dtypes)))

    @property
    def n_systems(self) -> int:
        return len(self.ptr) - 1

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Structures:
        """Move to ``device``; ``dtype`` changes the positions' floating type only."""
        return Structures(self.positions.to(device=device, dtype=dtype), self.numbers.to(device),
                          self.system.to(device), self.ptr.to(device))
