"""Reading structures for the reference calculations."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io


def read_frames(path: str | Path, index: str | int | slice = ":") -> list[ase.Atoms]:
    """Molecules of a structure file (any format ASE reads), positions in Å.

    ``index`` selects frames as in ``ase.io.read`` (``":"`` all, ``"::10"``, ``0``...). Cell
    and periodicity are dropped: these are isolated molecules (the water file of the reference
    data declares ``pbc="T T T"`` with no cell).
    """
    frames = ase.io.read(path, index=index)
    frames = [frames] if isinstance(frames, ase.Atoms) else list(frames)
    for atoms in frames:
        atoms.set_cell(None)
        atoms.set_pbc(False)
    return frames
