"""Fine-tuning all heads against assembled matrices and orbital energies: symmetry kept, loss
falls, checkpoints resume, the log is written."""

import csv

import ase
import numpy as np
import pytest
import scipy.linalg
import torch

from nhamil.config import compose_config
from nhamil.errors import InputError
from nhamil.features import DensitySettings
from nhamil.heads import GatedHead, KernelSettings, split_molecules
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import basis_wigner, random_rotation
from nhamil.reference import read_frames
from nhamil.train import train
from nhamil.training import FinetuneSettings, TrainingData, finetune
from nhamil.training.finetune import CHECKPOINT, LOG, LOG_COLUMNS, _inverse_cholesky

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = FeatureSettings(density=DensitySettings(max_radial=4, max_angular=3))
TUNE = FinetuneSettings(epochs=4, batch_size=3, learning_rate=1e-6, energy_weight=1.0, patience=10, hidden=4)


@pytest.fixture(scope="module")
def water(water_saph_data):
    """(ridge model state, training data of 8 frames, 2 test frames)."""
    frames, matrices, basis = water_saph_data
    model = HamiltonianModel(basis, [1, 8], target="saph", features=SMALL).fit(frames[:8], matrices[:8], progress=False)
    return model.state_dict(), TrainingData(frames[:8], matrices[:8], [4] * 8), frames[8:10]


def _tuned(water, settings=TUNE, directory=None):
    state, data, _ = water
    model = HamiltonianModel.from_state_dict(state)
    return model, finetune(model, data, settings, directory=directory, progress=False)


def test_training_loss_falls_and_heads_become_gated_modules(water):
    model, history = _tuned(water, FinetuneSettings(**{**TUNE.__dict__, "patience": 100}))
    assert len(history) == TUNE.epochs
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(isinstance(fit, GatedHead) for _, fit in model.heads.values())


@pytest.mark.parametrize("improper", [False, True])
def test_fine_tuned_model_follows_rotation_inversion_and_permutation(water, improper):
    """P_ao D F D^T P_ao^T to 1e-9 Ha, float64, for any weights of the fine-tuned heads: the early
    stopping may keep the ridge start (zero gates) on so few frames, so every parameter is then
    moved at random."""
    model, _ = _tuned(water, FinetuneSettings(**{**TUNE.__dict__, "epochs": 1}))
    torch.manual_seed(0)
    with torch.no_grad():
        for _, fit in model.heads.values():
            for parameter in fit.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    atoms = water[2][0]
    generator = torch.Generator().manual_seed(7)
    rotation = random_rotation(generator, improper=improper)
    permutation = np.array([2, 0, 1])
    moved = ase.Atoms(atoms.numbers[permutation], (atoms.positions[permutation] + 0.4) @ rotation.numpy().T)
    original, transformed = model.predict([atoms, moved])
    wigner = basis_wigner(model.basis, atoms.numbers, rotation)
    offsets = model.basis.atom_offsets(atoms.numbers)
    order = np.concatenate([np.arange(offsets[a], offsets[a + 1]) for a in permutation])
    expected = (wigner @ original @ wigner.T)[order][:, order]
    assert torch.allclose(transformed, expected, atol=1e-9, rtol=0)


def test_resume_continues_from_the_saved_epoch(water, tmp_path):
    """Two epochs, then a restart asked for four, equal four epochs in one go; the CSV holds all."""
    once, _ = _tuned(water, directory=tmp_path / "once")
    _tuned(water, FinetuneSettings(**{**TUNE.__dict__, "epochs": 2}), directory=tmp_path / "twice")
    resumed, history = _tuned(water, directory=tmp_path / "twice")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    for first, second in zip(once.predict(water[2]), resumed.predict(water[2]), strict=True):
        assert torch.allclose(first, second, atol=1e-13, rtol=0)
    with open(tmp_path / "twice" / LOG) as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == LOG_COLUMNS and [int(row["epoch"]) for row in rows] == [1, 2, 3, 4]
    assert (tmp_path / "twice" / CHECKPOINT).exists()


def test_lbfgs_lowers_the_training_loss(water):
    _, history = _tuned(
        water,
        FinetuneSettings(
            **{
                **TUNE.__dict__,
                "optimizer": "lbfgs",
                "learning_rate": 1.0,
                "epochs": 2,
                "lbfgs_iterations": 5,
                "patience": 100,
            }
        ),
    )
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_generalized_energies_use_the_overlap():
    generator = np.random.default_rng(0)
    a, b = generator.normal(size=(2, 6, 6))
    fock, overlap = a + a.T, b @ b.T + 6 * np.eye(6)
    metric = _inverse_cholesky(overlap, torch.device("cpu"))
    energies = torch.linalg.eigvalsh(metric @ torch.as_tensor(fock) @ metric.T).numpy()
    assert np.allclose(energies, scipy.linalg.eigh(fock, overlap, eigvals_only=True), atol=1e-12)


def test_kernel_heads_are_refused(water_saph_data):
    frames, matrices, basis = water_saph_data
    model = HamiltonianModel(basis, [1, 8], target="saph", features=SMALL, head=KernelSettings(n_active=4))
    model.fit(frames[:6], matrices[:6], progress=False)
    with pytest.raises(InputError, match="head=gated"):
        finetune(model, TrainingData(frames[:6], matrices[:6], [4] * 6), TUNE, progress=False)


@pytest.mark.parametrize(
    "bad",
    [{"optimizer": "sgd"}, {"energy_weight": -1.0}, {"matrix_weight": 0.0, "energy_weight": 0.0}, {"batch_size": 0}],
)
def test_bad_finetune_settings_are_named(bad):
    with pytest.raises(InputError, match="finetune"):
        FinetuneSettings(**bad)


def test_config_has_finetune_and_gated_head():
    cfg = compose_config(["+experiment=water_fock", "head=gated", "finetune.epochs=3", "finetune.energy_weight=2"])
    assert (cfg.head.kind, cfg.finetune.epochs, cfg.finetune.energy_weight) == ("gated", 3, 2.0)
    with pytest.raises(Exception, match="epochz"):
        compose_config(["+experiment=water_fock", "finetune.epochz=3"])


def test_train_entry_point_fine_tunes_and_logs(tmp_path):
    """``head=gated +finetune=energy finetune.epochs=2``: a gated fit, two epochs of fine-tuning,
    their log and checkpoint in the run folder, and a model that loads with gated heads."""
    cfg = compose_config(
        [
            "+experiment=water",
            "split.train=[0,10]",
            "split.test=[10,12]",
            "head=gated",
            "head.epochs=2",
            "+finetune=energy",
            "finetune.epochs=2",
            "finetune.hidden=4",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.n_workers=1",
            "features.density.max_radial=4",
            "features.density.max_angular=3",
        ]
    )
    metrics = train(cfg, tmp_path / "run")
    assert metrics["head"] == "gated"
    with open(tmp_path / "run" / LOG) as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]
    model = HamiltonianModel.load(tmp_path / "run" / "model.pt")
    assert all(isinstance(fit, GatedHead) for _, fit in model.heads.values())


def test_starting_heads_never_see_the_validation_molecules(tmp_path, monkeypatch):
    """With fine-tuning, the closed-form fit that starts it leaves out the molecules that
    fine-tuning validates on (the same seeded split), so early stopping is not judged on
    molecules the starting heads were fitted to."""
    fitted_on = []
    original_fit = HamiltonianModel.fit

    def recording_fit(self, frames, matrices, **kwargs):
        fitted_on.extend(atoms.positions.tobytes() for atoms in frames)
        return original_fit(self, frames, matrices, **kwargs)

    monkeypatch.setattr(HamiltonianModel, "fit", recording_fit)
    overrides = [
        "+experiment=water",
        "split.train=[0,10]",
        "split.test=[10,12]",
        "+finetune=matrix",
        "finetune.epochs=1",
        "finetune.validation_fraction=0.2",
        "finetune.hidden=4",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.n_workers=1",
        "features.density.max_radial=4",
        "features.density.max_angular=3",
    ]
    cfg = compose_config(overrides)
    train(cfg, tmp_path / "run")
    frames = read_frames(cfg.data.frames)[:10]
    _, validation = split_molecules(torch.arange(10), 0.2, cfg.seed)
    assert len(fitted_on) == 8
    assert not {frames[int(k)].positions.tobytes() for k in validation} & set(fitted_on)
