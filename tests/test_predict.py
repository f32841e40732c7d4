"""The predict command: any ASE structure file in, matrices and orbital energies out, clear
errors before any work."""

import re
import shutil

import ase
import ase.io
import h5py
import numpy as np
import pytest
import torch
from water_fock_run import WATER, water_fock_run

from nhamil.errors import InputError
from nhamil.model import HamiltonianModel
from nhamil.orbitals import random_rotation
from nhamil.predict import main as predict_main
from nhamil.predict import predict_matrices
from nhamil.reference import read_frames
from nhamil.testing import INVARIANT, assert_equivariant


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return water_fock_run(tmp_path_factory)


@pytest.mark.parametrize("fmt, suffix", [("extxyz", "extxyz"), ("xyz", "xyz"), ("proteindatabank", "pdb")])
def test_writes_matrices_and_orbital_energies(run_dir, tmp_path, fmt, suffix):
    frames = read_frames(WATER, "10:13")
    ase.io.write(tmp_path / f"molecules.{suffix}", frames, format=fmt)
    output = predict_main(
        [
            str(run_dir / "model.pt"),
            str(tmp_path / f"molecules.{suffix}"),
            "-o",
            str(tmp_path / "out.h5"),
            "--basis",
            "def2-svp",
            "--batch-size",
            "2",
        ]
    )
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(read_frames(tmp_path / f"molecules.{suffix}"))
    with h5py.File(output) as file:
        assert file.attrs["target"] == "fock_orthogonal" and file.attrs["basis"] == "def2-svp"
        assert sorted(file) == ["000000", "000001", "000002"]
        for name, matrix in zip(sorted(file), expected, strict=True):
            np.testing.assert_allclose(file[name]["matrix"][()], matrix.numpy(), atol=1e-12)
            np.testing.assert_allclose(
                file[name]["orbital_energies"][()], np.linalg.eigvalsh(matrix.numpy()), atol=1e-12
            )
            assert file[name]["orbital_energies"].shape == (24,)


def test_batches_and_rotations_do_not_change_orbital_energies(run_dir):
    model = HamiltonianModel.load(run_dir / "model.pt")
    atoms = read_frames(WATER, "11")[0]
    rotation = random_rotation(torch.Generator().manual_seed(5), improper=True).numpy()
    moved = ase.Atoms(atoms.numbers[::-1], atoms.positions[::-1] @ rotation.T)
    one_by_one = predict_matrices(model, [atoms, moved], batch_size=1, progress=False)
    together = predict_matrices(model, [atoms, moved], batch_size=8, progress=False)
    np.testing.assert_allclose(one_by_one[0], together[0], atol=1e-12)

    def energies(frames):
        return [np.linalg.eigvalsh(m) for m in predict_matrices(model, frames, progress=False)]

    assert_equivariant(energies, [atoms], law=INVARIANT, seed=5, atol=1e-9)


def test_float32_predictions_are_written_as_float64_and_stay_close(run_dir, tmp_path):
    frames = read_frames(WATER, "10:12")
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    output = predict_main(
        [str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"), "--float32"]
    )
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(frames)
    with h5py.File(output) as file:
        for name, matrix in zip(sorted(file), expected, strict=True):
            assert file[name]["matrix"].dtype == np.float64
            difference = np.abs(file[name]["matrix"][()] - matrix.numpy()).max()
            assert 0 < difference < 1e-5


@pytest.mark.parametrize(
    "atoms, extra, message",
    [
        (ase.Atoms("NH3", np.eye(4, 3)), [], r"structure 1 \(H3N\).*\['N'\]"),
        (None, ["--basis", "cc-pvdz"], r"'def2-svp'.*'cc-pvdz'"),
    ],
)
def test_unknown_element_or_basis_fails_before_any_work(run_dir, tmp_path, capsys, monkeypatch, atoms, extra, message):
    frames = read_frames(WATER, "10:11") + ([atoms] if atoms is not None else [])
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    _assert_one_line_error(
        [str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"), *extra],
        message,
        capsys,
        monkeypatch,
    )
    assert not (tmp_path / "out.h5").exists()


def _assert_one_line_error(argv, message, capsys, monkeypatch):
    """The command exits with status 2 and one line ``nhamil.predict: error: ...`` matching ``message``."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        predict_main(argv)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1
    assert re.search(message, error), error


@pytest.mark.parametrize(
    "change, message",
    [
        ("nan", r"nhamil.predict: error: structure 1 \(H2O\): atom 2 \(H\) has a non-finite coordinate \[nan"),
        ("inf", r"structure 1 \(H2O\): atom 2 \(H\) has a non-finite coordinate \[inf"),
        ("same", r"structure 1 \(H2O\): atoms 0 \(O\) and 2 \(H\) are 0 Å apart, closer than 0.1 Å"),
    ],
)
def test_impossible_geometry_is_named_not_turned_into_nan(run_dir, tmp_path, capsys, monkeypatch, change, message):
    frames = read_frames(WATER, "10:12")
    frames[1].positions[2] = frames[1].positions[0] if change == "same" else float(change)
    with pytest.raises(InputError, match=message.removeprefix("nhamil.predict: error: ")):
        HamiltonianModel.load(run_dir / "model.pt").predict(frames)
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    _assert_one_line_error(
        [str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5")],
        message,
        capsys,
        monkeypatch,
    )
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--index", "101"],
            r"nhamil.predict: error: structure file .*molecules.xyz has 2 frames; index '101' is beyond",
        ),
        (["--index", "5:"], r"index '5:' selects none of the 2 frames of .*molecules.xyz"),
    ],
)
def test_frame_index_beyond_the_file_is_named(run_dir, tmp_path, capsys, monkeypatch, extra, message):
    ase.io.write(tmp_path / "molecules.xyz", read_frames(WATER, "10:12"), format="extxyz")
    _assert_one_line_error(
        [str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"), *extra],
        message,
        capsys,
        monkeypatch,
    )


def test_pair_chunks_do_not_change_the_written_matrices(run_dir, tmp_path):
    frames = read_frames(WATER, "10:12")
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    model, structures = str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz")
    whole = predict_main([model, structures, "-o", str(tmp_path / "whole.h5")])
    chunked = predict_main([model, structures, "-o", str(tmp_path / "chunked.h5"), "--pair-chunk", "1"])
    with h5py.File(whole) as expected, h5py.File(chunked) as found:
        for name in expected:
            np.testing.assert_allclose(found[name]["matrix"][()], expected[name]["matrix"][()], atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", ["-1", "0", "two"])
def test_batch_size_below_one_is_refused(run_dir, tmp_path, capsys, size):
    ase.io.write(tmp_path / "molecules.xyz", read_frames(WATER, "10:12"), format="extxyz")
    with pytest.raises(SystemExit) as exit_info:
        predict_main(
            [
                str(run_dir / "model.pt"),
                str(tmp_path / "molecules.xyz"),
                "-o",
                str(tmp_path / "out.h5"),
                "--batch-size",
                size,
            ]
        )
    assert exit_info.value.code == 2 and "whole number >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("target", ["structures", "checkpoint"])
def test_output_onto_an_input_is_refused(run_dir, tmp_path, capsys, monkeypatch, target):
    ase.io.write(tmp_path / "molecules.xyz", read_frames(WATER, "10:12"), format="extxyz")
    shutil.copy(run_dir / "model.pt", tmp_path / "model.pt")
    inputs = {"checkpoint": tmp_path / "model.pt", "structures": tmp_path / "molecules.xyz"}
    before = inputs[target].read_bytes()
    output = tmp_path / "sub" / ".." / inputs[target].name
    (tmp_path / "sub").mkdir()
    name = "structure file" if target == "structures" else "checkpoint"
    _assert_one_line_error(
        [str(inputs["checkpoint"]), str(inputs["structures"]), "-o", str(output)],
        rf"output file .* is the {name} .*{inputs[target].name}: writing would overwrite it",
        capsys,
        monkeypatch,
    )
    assert inputs[target].read_bytes() == before


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_predict_command_on_cuda_writes_the_cpu_predictions(run_dir, tmp_path):
    frames = read_frames(WATER, "10:13")
    ase.io.write(tmp_path / "molecules.xyz", frames, format="extxyz")
    output = predict_main(
        [str(run_dir / "model.pt"), str(tmp_path / "molecules.xyz"), "-o", str(tmp_path / "out.h5"), "--device", "cuda"]
    )
    expected = HamiltonianModel.load(run_dir / "model.pt").predict(frames)
    with h5py.File(output) as file:
        for name, matrix in zip(sorted(file), expected, strict=True):
            np.testing.assert_allclose(file[name]["matrix"][()], matrix.numpy(), atol=1e-10)
