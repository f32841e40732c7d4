"""Checkpoints: damaged or foreign files are refused by name, a full disk is named and keeps the
metrics, and the level of theory they record is enforced by evaluation and SCF guesses."""

import errno
import json
import pathlib
import shutil

import ase.io
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from water_fock_run import WATER, reference_cache, water_fock_run

from nhamil.config import compose_config
from nhamil.errors import DataFileError, InputError, one_line
from nhamil.evaluate import load_run
from nhamil.model import CHECKPOINT_FORMAT, HamiltonianModel
from nhamil.reference import ProjectionSettings, ScfSettings, read_frames
from nhamil.scf_guess import compare_guesses, predicted_density
from nhamil.targets import Target
from nhamil.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return water_fock_run(tmp_path_factory)


def test_checkpoint_records_the_target_and_its_level_of_theory(run_dir):
    model = HamiltonianModel.load(run_dir / "model.pt")
    assert model.target == Target("fock_orthogonal", ScfSettings(), ProjectionSettings())
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert state["format"] == CHECKPOINT_FORMAT == 2
    assert state["target"]["scf"]["method"] == "rhf" and state["target"]["scf"]["basis"] == "def2-svp"
    assert state["target"]["projection"] == ProjectionSettings().to_dict()


def test_damaged_checkpoint_is_refused_by_name(run_dir, tmp_path):
    """64 random bytes in the middle of model.pt: the archive's CRC check fails."""
    data = bytearray((run_dir / "model.pt").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    (tmp_path / "model.pt").write_bytes(bytes(data))
    with pytest.raises(DataFileError, match=rf"checkpoint {tmp_path / 'model.pt'} is damaged"):
        HamiltonianModel.load(tmp_path / "model.pt")


def test_truncated_checkpoint_is_refused_by_name(run_dir, tmp_path):
    data = (run_dir / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="model.pt is not an nhamil checkpoint"):
        HamiltonianModel.load(tmp_path / "model.pt")


def test_structure_file_given_as_checkpoint_is_named_in_one_line(tmp_path):
    ase.io.write(tmp_path / "water.xyz", read_frames(WATER, "0:2"))
    with pytest.raises(DataFileError) as info:
        HamiltonianModel.load(tmp_path / "water.xyz")
    message = one_line(info.value)
    assert message.startswith(f"{tmp_path / 'water.xyz'} is not an nhamil checkpoint")
    assert "weights_only" not in message and "\n" not in str(info.value)


def test_torch_file_that_is_not_a_model_is_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(DataFileError, match="tensor.pt is not an nhamil checkpoint"):
        HamiltonianModel.load(tmp_path / "tensor.pt")


def test_older_checkpoint_format_is_refused_with_the_remedy(run_dir, tmp_path):
    state = torch.load(run_dir / "model.pt", weights_only=True)
    torch.save({**state, "format": 1, "target": "fock_orthogonal"}, tmp_path / "model.pt")
    with pytest.raises(DataFileError, match=r"model.pt: checkpoint format 1 is not 2 .* train the model again"):
        HamiltonianModel.load(tmp_path / "model.pt")


def _full_disk_for_checkpoints(monkeypatch):
    """Make every write of a .pt file fail as on a full disk."""
    write_bytes = pathlib.Path.write_bytes

    def failing(self, data):
        if self.suffix == ".pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", failing)


def test_full_disk_names_the_checkpoint_and_leaves_no_file(run_dir, tmp_path, monkeypatch):
    model = HamiltonianModel.load(run_dir / "model.pt")
    _full_disk_for_checkpoints(monkeypatch)
    with pytest.raises(OSError) as info:
        model.save(tmp_path / "model.pt")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "model.pt")
    assert one_line(info.value).startswith(f"no space left on {tmp_path / 'model.pt'}")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_training_keeps_the_metrics(tmp_path, tmp_path_factory, monkeypatch, caplog):
    cfg = compose_config(
        [
            "+experiment=water_fock",
            "split.train=[0,6]",
            "split.test=[10,12]",
            f"data.frames={WATER}",
            f"data.cache_dir={reference_cache(tmp_path_factory)}",
            "data.n_workers=1",
            "features.density.max_radial=2",
            "features.density.max_angular=2",
        ]
    )
    _full_disk_for_checkpoints(monkeypatch)
    caplog.set_level("INFO", logger="nhamil.train")
    with pytest.raises(OSError, match="model.pt"):
        train(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_train"] == 6 and metrics["hamiltonian_mae_uha"] > 0
    assert "test-set errors" in caplog.text
    assert not (tmp_path / "run" / "model.pt").exists()


def _run_at(run_dir, tmp_path, **reference):
    """A copy of ``run_dir`` whose config says another level of theory."""
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    cfg = OmegaConf.load(copy / ".hydra" / "config.yaml")
    for name, value in reference.items():
        cfg.reference[name] = value
    OmegaConf.save(cfg, copy / ".hydra" / "config.yaml")
    return copy


def test_evaluation_refuses_a_run_config_of_another_level_of_theory(run_dir, tmp_path):
    with pytest.raises(InputError, match=r"trained on RHF/def2-svp references but the config .* is RKS pbe/def2-svp"):
        load_run(_run_at(run_dir, tmp_path, method="rks", xc="pbe"))


def test_evaluation_accepts_other_scf_thresholds(run_dir, tmp_path):
    model, cfg = load_run(_run_at(run_dir, tmp_path, conv_tol=1e-8, max_cycle=50))
    assert model.target.name == cfg.target == "fock_orthogonal"


def test_scf_guess_refuses_another_level_of_theory(run_dir):
    model = HamiltonianModel.load(run_dir / "model.pt")
    atoms = read_frames(WATER, "11")[0]
    with pytest.raises(InputError, match=r"RHF/def2-svp references but the SCF is RKS b3lyp/def2-svp"):
        predicted_density(model, atoms, ScfSettings(method="rks", xc="b3lyp"))
    with pytest.raises(InputError, match=r"but the SCF is RHF/def2-svp, charge 1, spin 1"):
        compare_guesses(model, [atoms], ScfSettings(charge=1, spin=1), progress=False)
