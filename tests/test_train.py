"""The Hydra entry point: composition, typo errors, launchers, and one small end-to-end run."""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from paper_data import WATER, paper_saph

from nhamil.config import compose_config
from nhamil.evaluate import load_run
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import read_frames
from nhamil.train import _make_model, train

REPO = Path(__file__).resolve().parents[1]


def test_water_experiment_is_the_published_example():
    cfg = compose_config(["+experiment=water"])
    assert cfg.target == "saph"
    assert list(cfg.split.train) == [0, 40] and list(cfg.split.test) == [40, 50]
    assert cfg.reference.basis == "def2-svp" and cfg.reference.method == "rhf"


def test_typo_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="alpah"):
        compose_config(["+experiment=water", "head.alpah=3"])


def test_property_experiment_composes_with_its_own_schema():
    cfg = compose_config(["+experiment=dipole_dce"])
    assert cfg.task == "properties" and cfg.properties.n_train == 1000 and cfg.properties.n_test == 1200
    with pytest.raises(ConfigCompositionException, match="n_trian"):
        compose_config(["+experiment=dipole_dce", "properties.n_trian=5"])


def test_head_options_keep_their_own_keys():
    assert compose_config(["+experiment=water", "head=sparse_kernel"]).head.n_active == 500
    with pytest.raises(ConfigCompositionException, match="epochs"):
        compose_config(["+experiment=water", "head=kernel", "head.epochs=3"])


def test_onsite_head_option_reaches_the_model_with_its_own_keys():
    basis, species = AtomicBasis.from_pyscf("def2-svp", [1, 8]), [1, 8]
    cfg = compose_config(["+experiment=water_fock", "+head@onsite_head=sparse_kernel", "onsite_head.n_active=40"])
    model = _make_model(cfg, basis, species)
    assert (type(model.head).__name__, model.onsite_head.n_active, model.onsite_head.seed) == ("RidgeSettings", 40, 0)
    assert _make_model(compose_config(["+experiment=water_fock"]), basis, species).onsite_head is None
    with pytest.raises(ConfigCompositionException, match="epochs"):
        compose_config(["+experiment=water", "+head@onsite_head=sparse_kernel", "onsite_head.epochs=3"])


def test_baseline_reaches_the_model():
    cfg = compose_config(["+experiment=water_fock", "baseline=sap"])
    assert _make_model(cfg, AtomicBasis.from_pyscf("def2-svp", [1, 8]), [1, 8]).baseline == "sap"
    assert compose_config(["+experiment=water_fock"]).baseline is None


def test_local_launcher_config_composes():
    command = [sys.executable, "-m", "nhamil.train", "+experiment=water", "hydra/launcher=local", "--cfg", "hydra"]
    assert (
        "joblib_launcher.JoblibLauncher"
        in subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    )


#: The sweep and Slurm commands of the README and of ``--help``, exactly as written there.
LOCAL_SWEEP = "python -m nhamil.train -m +experiment=water head=ridge,kernel hydra/launcher=local"
SLURM_CONFIG = "python -m nhamil.train +experiment=water hydra/launcher=slurm hydra.launcher.partition=gpu --cfg hydra"


def test_local_sweep_command_runs_as_written_and_logs_to_train_log(tmp_path):
    """Both jobs run (``-m`` before the overrides); each writes metrics.json and a train.log
    holding its metrics table (the log was empty when results were printed)."""
    small = [
        "split.train=[0,10]",
        "split.test=[10,12]",
        "data.n_workers=1",
        "features.density.max_radial=3",
        "features.density.max_angular=3",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.launcher.n_jobs=1",
    ]
    command = [sys.executable, *shlex.split(LOCAL_SWEEP)[1:], *small]
    subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    for job, head in [("0", "ridge"), ("1", "kernel")]:
        assert json.loads((tmp_path / "sweep" / job / "metrics.json").read_text())["head"] == head
        assert "test-set errors" in (tmp_path / "sweep" / job / "train.log").read_text()


def test_slurm_command_composes_as_written_without_a_cluster():
    shown = subprocess.run(
        [sys.executable, *shlex.split(SLURM_CONFIG)[1:]], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "submitit_launcher.SlurmLauncher" in shown and "partition: gpu" in shown


def _small_water(tmp_path, *overrides):
    return compose_config(
        [
            "+experiment=water",
            "split.train=[0,12]",
            "split.test=[12,15]",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.n_workers=1",
            "features.density.max_radial=4",
            "features.density.max_angular=3",
            *overrides,
        ]
    )


def test_small_run_writes_metrics_checkpoint_and_plot(tmp_path):
    cfg = _small_water(tmp_path)
    metrics = train(cfg, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written == pytest.approx(metrics)
    assert 0 < metrics["energy_rmse_mev"] < 200
    assert (tmp_path / "run" / "orbital_energies.png").stat().st_size > 1000
    model = HamiltonianModel.load(tmp_path / "run" / "model.pt")
    frames = read_frames(WATER, "12:15")
    reference = paper_saph("water", range(12, 15))
    predicted = np.stack([p.numpy() for p in model.predict(frames)])
    assert np.abs(predicted - reference).mean() * 1e6 == pytest.approx(metrics["hamiltonian_mae_uha"], rel=1e-3)
    _, saved = load_run(tmp_path / "run")
    assert OmegaConf.to_container(saved) == OmegaConf.to_container(cfg)


def test_run_folder_keeps_the_config_hydra_wrote_there(tmp_path):
    """The CLI's run folder already holds Hydra's config; ``train`` leaves that file alone."""
    hydra_copy = tmp_path / "run" / ".hydra" / "config.yaml"
    hydra_copy.parent.mkdir(parents=True)
    hydra_copy.write_text("# written by Hydra\n" + OmegaConf.to_yaml(_small_water(tmp_path)))
    written = hydra_copy.read_text()
    train(_small_water(tmp_path), tmp_path / "run")
    assert hydra_copy.read_text() == written


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_numbers_with_rebuilt_references(tmp_path):
    """Each run computes its references into its own cache, in this process (n_workers=1):
    threaded PySCF made them, and the metrics, differ in the last digits."""
    first = train(_small_water(tmp_path / "a", "head=sparse_kernel", "head.n_active=8"), tmp_path / "first")
    second = train(_small_water(tmp_path / "b", "head=sparse_kernel", "head.n_active=8"), tmp_path / "second")
    timings = {"baseline_seconds", "fit_seconds", "predict_seconds_per_molecule"}
    assert {k: v for k, v in first.items() if k not in timings} == {k: v for k, v in second.items() if k not in timings}


def test_overlapping_split_is_refused(tmp_path):
    cfg = compose_config(["+experiment=water", "split.train=[0,12]", "split.test=[10,15]"])
    with pytest.raises(ValueError, match="overlap"):
        train(cfg, tmp_path)
