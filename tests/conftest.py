"""Fixtures shared by several test modules."""

import pytest
import torch
from paper_data import WATER, paper_saph

from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, read_frames

#: pytester tests the strict-skip gate (``strict_skips``, active with NHAMIL_STRICT_SKIPS=1).
pytest_plugins = ["pytester", "strict_skips"]


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
    frames = read_frames(WATER, ":12")
    matrices = [torch.as_tensor(m) for m in paper_saph("water", range(12))]
    return frames, matrices, ProjectionSettings().minimal_basis(AtomicBasis.from_pyscf("def2-svp", [1, 8]))
