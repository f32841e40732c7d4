"""Fixtures shared by several test modules."""

from pathlib import Path

import numpy as np
import pytest
import torch

from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, read_frames

#: The paper's reference data, checked out beside the repository.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ncenter-reps"


@pytest.fixture(scope="module")
def one_thread():
    """Feature tensors in tests are small: with two busy cores, OpenMP threads waiting on each
    other made them 10x slower (90 s instead of 8 s). Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def water_saph_data():
    """(frames, SAPH matrices, minimal basis) of the paper's first 12 water frames."""
    if not DATA.exists():
        pytest.skip(f"reference data folder {DATA} is absent")
    frames = read_frames(DATA / "water_coords_1000.xyz", ":12")
    matrices = [torch.as_tensor(m) for m in np.load(DATA / "water_saph_orthogonal.npy")[:12]]
    return frames, matrices, ProjectionSettings().minimal_basis(AtomicBasis.from_pyscf("def2-svp", [1, 8]))
