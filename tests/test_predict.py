"""The predict command: any ASE structure file in, matrices and orbital energies out, clear
errors before any work."""

import ase
import ase.io
import h5py
import numpy as np
import pytest
import torch
from water_fock_run import DATA, WATER, water_fock_run

from nhamil.model import HamiltonianModel
from nhamil.orbitals import random_rotation
from nhamil.predict import main as predict_main
from nhamil.predict import predict_matrices
from nhamil.reference import read_frames
from nhamil.testing import INVARIANT, assert_equivariant

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"reference data folder {DATA} is absent")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return water_fock_run(tmp_path_factory)


@pytest.mark.parametrize("fmt, suffix", [("extxyz", "extxyz"), ("xyz", "xyz"), ("proteindatabank", "pdb")])
def test_writes_matrices_and_orbital_energies(run_dir, tmp_path, fmt, suffix):
    frames = read_frames(WATER, "10:13")
    ase.io.write(tmp_path / f"molecules.{suffix}", frames, format=fmt)
    output = predict_main([str(run_dir / "model.pt"), str(tmp_path / f"molecules.{suffix}"), "-o",
                           str(tmp_path / "out.h5"), "--basis", "def2-svp", "--batch-size", "2"])
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(read_frames(tmp_path / f"molecules.{suffix}"))
    with h5py.File(output) as file:
        assert file.attrs["target"] == "fock_orthogonal" and file.attrs["basis"] == "def2-svp"
        assert sorted(file) == ["000000", "000001", "000002"]
        for name, matrix in zip(sorted(file), expected):
            np.testing.assert_allclose(file[name]["matrix"][()], matrix.numpy(), atol=1e-12)
            np.testing.assert_allclose(file[name]["orbital_energies"][()], np.linalg.eigvalsh(matrix.numpy()),
                                       atol=1e-12)
            assert file[name]["orbital_energies"].shape == (24,)


def test_batches_and_rotations_do_not_change_orbital_energies(run_dir):
    model = HamiltonianModel.load(run_dir / "model.pt")
    atoms = read_frames(WATER, "11")[0]
    rotation = random_rotation(torch.Generator().manual_seed(5), improper=True).numpy()
    moved = ase.Atoms(atoms.numbers[::-1], atoms.positions[::-1] @ rotation.T)
    one_by_one = predict_matrices(model, [atoms, moved], batch_size=1, progress=False)
    together = predict_matrices(model, [atoms, moved], batch_size=8, progress=False)
    np.testing.assert_allclose(one_by_one[0], together[0], atol=1e-12)
    energies = lambda frames: [np.linalg.eigvalsh(m) for m in predict_matrices(model, frames, progress=False)]
    assert_equivariant(energies, [atoms], law=INVARIANT, seed=5, atol=1e-9)


def test_float32_predictions_are_written_as_float64_and_stay_close(run_dir, tmp_path):
    frames = read_frames(WATER, "10:12")
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    output = predict_main([str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"),
                           "--float32"])
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(frames)
    with h5py.File(output) as file:
        for name, matrix in zip(sorted(file), expected):
            assert file[name]["matrix"].dtype == np.float64
            difference = np.abs(file[name]["matrix"][()] - matrix.numpy()).max()
            assert 0 < difference < 1e-5


@pytest.mark.parametrize("atoms, extra, message", [
    (ase.Atoms("NH3", np.eye(4, 3)), [], r"structure 1 \(H3N\).*\['N'\]"),
    (None, ["--basis", "cc-pvdz"], r"'def2-svp'.*'cc-pvdz'"),
])
def test_unknown_element_or_basis_fails_before_any_work(run_dir, tmp_path, atoms, extra, message):
    frames = read_frames(WATER, "10:11") + ([atoms] if atoms is not None else [])
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    with pytest.raises(ValueError, match=message):
        predict_main([str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"),
                      *extra])
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_command_on_cuda_writes_the_cpu_predictions(run_dir, tmp_path):
    frames = read_frames(WATER, "10:13")
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    output = predict_main([str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"),
                           "--device", "cuda"])
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(frames)
    with h5py.File(output) as file:
        for name, matrix in zip(sorted(file), expected):
            np.testing.assert_allclose(file[name]["matrix"][()], matrix.numpy(), atol=1e-10)
