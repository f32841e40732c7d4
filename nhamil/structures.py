"""A batch of molecules as flat tensors, the input of every feature function."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch

from .errors import InputError


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
    def from_atoms(
        cls, frames: Sequence[ase.Atoms], dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
    ) -> Structures:
        """Batch a list of ``ase.Atoms`` (positions in Å; cell and pbc are ignored)."""
        if isinstance(frames, ase.Atoms):
            frames = [frames]
        sizes = [len(a) for a in frames]
        if not frames or min(sizes) == 0:
            raise ValueError("need at least one structure, and no empty structure")
        fields = (
            np.concatenate([a.positions for a in frames]),
            np.concatenate([a.numbers for a in frames]),
            np.repeat(np.arange(len(sizes)), sizes),
            np.array([0, *itertools.accumulate(sizes)]),
        )
        dtypes = (dtype, torch.long, torch.long, torch.long)
        return cls(
            *(torch.from_numpy(field).to(device=device, dtype=kind) for field, kind in zip(fields, dtypes, strict=True))
        )

    @property
    def n_systems(self) -> int:
        return len(self.ptr) - 1

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Structures:
        """Move to ``device``; ``dtype`` changes the positions' floating type only."""
        return Structures(
            self.positions.to(device=device, dtype=dtype),
            self.numbers.to(device),
            self.system.to(device),
            self.ptr.to(device),
        )


#: Closest two atoms may be (Å) in :func:`check_geometries`: far below the shortest chemical
#: bond (H2, 0.74 Å) and any strained or distorted geometry, so it refuses only coordinates
#: that are wrong (an atom written twice, a unit mix-up), at which the features and the SCF
#: overlap matrix are singular and the eigensolver fails or returns NaN.
MIN_DISTANCE = 0.1


def check_geometries(
    frames: Sequence[ase.Atoms], labels: Sequence[int] | None = None, min_distance: float = MIN_DISTANCE
) -> None:
    """Raise :class:`nhamil.errors.InputError` naming the first structure with a non-finite
    coordinate or two atoms closer than ``min_distance`` (Å), and the atoms. ``labels`` are the
    structures' indices in the user's data file (default: their positions in ``frames``)."""
    for position, atoms in enumerate(frames):
        label = labels[position] if labels is not None else position
        where = f"structure {label} ({atoms.get_chemical_formula()})"
        coordinates = np.asarray(atoms.positions, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(coordinates).all(axis=1))
        if bad.size:
            raise InputError(
                f"{where}: atom {bad[0]} ({atoms.get_chemical_symbols()[bad[0]]}) has a non-finite "
                f"coordinate {coordinates[bad[0]].tolist()} Å; fix the structure file"
            )
        distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=-1)
        first, second = np.triu_indices(len(atoms), k=1)
        close = np.flatnonzero(distances[first, second] < min_distance)
        if close.size:
            i, j = first[close[0]], second[close[0]]
            symbols = atoms.get_chemical_symbols()
            raise InputError(
                f"{where}: atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are "
                f"{distances[i, j]:.3g} Å apart, closer than {min_distance} Å; an atom written twice? "
                f"fix the structure file"
            )
