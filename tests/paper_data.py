"""The paper's data as the tests use it: the structure files shipped in ``nhamil/data`` and, for
the few frames the tests compare against, the authors' SAPH matrices (Hartree) in
``tests/data/paper_saph.npz``: water frames 0-14, 500 and 999 of ``water_saph_orthogonal.npy``
((n, 6, 6) float64) and ethanol frames 0-1 of ``ethanol-saph-ofock.npy`` ((n, 18, 18) float32, as
published), cut from the data folder of lab-cosmo/ncenter-reps (Apache-2.0, see
``nhamil/data/LICENSE``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nhamil.data import data_file

WATER = data_file("water_coords_1000.xyz")
ETHANOL = data_file("ethanol-structures.xyz")
SAPH = Path(__file__).resolve().parent / "data" / "paper_saph.npz"


def paper_saph(molecule: str, frames: Iterable[int]) -> np.ndarray:
    """The authors' SAPH matrices of ``frames`` of ``molecule`` ("water" or "ethanol"), stacked
    (n, m, m); ``KeyError`` naming the frames the fixture does not hold."""
    with np.load(SAPH) as stored:
        held, matrices = list(stored[f"{molecule}_frames"]), stored[molecule]
    frames = list(frames)
    absent = sorted(set(frames) - set(held))
    if absent:
        raise KeyError(f"{SAPH} holds {molecule} frames {held}, not {absent}: add them from the paper's data")
    return matrices[[held.index(frame) for frame in frames]]
