"""Reading structures for the reference calculations."""

from __future__ import annotations

from pathlib import Path

import ase
import ase.io
from ase.io.formats import UnknownFileTypeError

from ..errors import DataFileError, InputError


def read_frames(path: str | Path, index: str | int | slice = ":") -> list[ase.Atoms]:
    """Molecules of a structure file (any format ASE reads), positions in Å.

    ``index`` selects frames as in ``ase.io.read`` (``":"`` all, ``"::10"``, ``0``...). Cell
    and periodicity are dropped: these are isolated molecules (the water file of the reference
    data declares ``pbc="T T T"`` with no cell). A missing, empty or unreadable file raises
    :class:`DataFileError`, an index beyond its frames or selecting none :class:`InputError`,
    each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"structure file {path} {'is not a file' if path.exists() else 'does not exist'}")
    try:
        frames = ase.io.read(path, index=index)
    except UnknownFileTypeError as err:
        raise DataFileError(
            f"structure file {path}: ASE cannot read it ({err}); give a file in a format ASE "
            f"knows (.xyz, .extxyz, .pdb, ...) or with its usual extension"
        ) from None
    except (TypeError, ValueError) as err:
        raise _bad_index_or_content(path, index, err) from None
    except Exception:  # noqa: BLE001 - ASE's error for an index beyond the frames depends on the format
        raise InputError(
            f"structure file {path} has {_count_frames(path)} frames; index {index!r} is beyond them "
            "(indices count from 0)"
        ) from None
    frames = [frames] if isinstance(frames, ase.Atoms) else list(frames)
    if not frames:
        raise InputError(f"index {index!r} selects none of the {_count_frames(path)} frames of {path}")
    for position, atoms in enumerate(frames):
        if not len(atoms):
            raise DataFileError(f"structure {position} of {path} (index {index!r}) has no atoms")
        atoms.set_cell(None)
        atoms.set_pbc(False)
    return frames


def _count_frames(path: Path) -> int:
    """How many frames ASE reads from ``path``; ``DataFileError`` if it cannot read them all."""
    try:
        return len(ase.io.read(path, index=":"))
    except Exception as err:  # noqa: BLE001 - any parser failure means a damaged file, named here
        raise DataFileError(f"structure file {path} cannot be read: {type(err).__name__}: {err}") from None


def _bad_index_or_content(path: Path, index, err: Exception) -> InputError:
    """The error for a ``TypeError``/``ValueError`` of ``ase.io.read``: a malformed index if the
    whole file reads, else damaged content."""
    _count_frames(path)
    return InputError(
        f"frame index {index!r} for {path} is not one ase.io.read takes ({err}); "
        "give an integer (0, -1) or a slice ('10:20', '::10')"
    )
