"""The Target value (kind, level of theory, projection) and the AO ``fock`` target learned as such:
its orbital energies are generalized eigenvalues with PySCF's overlap, everywhere."""

import json

import h5py
import numpy as np
import pytest
import scipy.linalg
import torch
from water_fock_run import WATER, reference_cache, train_water_run

from nhamil.config import compose_config
from nhamil.errors import InputError
from nhamil.evaluate import overlap_matrix
from nhamil.evaluate.__main__ import main as evaluate_main
from nhamil.features import DensitySettings
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.predict import main as predict_main
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, read_frames
from nhamil.scf_guess import predicted_density
from nhamil.targets import TARGETS, Target
from nhamil.testing import assert_equivariant
from nhamil.train import target_from_config
from nhamil.units import HARTREE_TO_MEV

SETTINGS = ScfSettings()
WATER_BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])
SMALL = FeatureSettings(density=DensitySettings(max_radial=3, max_angular=3))


def test_target_round_trips_and_knows_its_basis_and_metric():
    target = Target("saph", ScfSettings(method="rks", xc="pbe"), ProjectionSettings(extra_candidates=5))
    assert Target.from_dict(json.loads(json.dumps(target.to_dict()))) == target
    assert target.model_basis_name == "def2-svp/minimal" and target.orthogonal and not target.supports_baseline
    fock = Target("fock")
    assert fock.model_basis_name == "def2-svp" and not fock.orthogonal and fock.full_fock
    assert TARGETS == ("saph", "fock_orthogonal", "fock")
    with pytest.raises(InputError, match="unknown target 'fock_ortho'; choose one of saph, fock_orthogonal, fock"):
        Target("fock_ortho")


def test_orbital_energies_of_a_non_orthogonal_target_need_the_overlap():
    with pytest.raises(ValueError, match="overlap"):
        Target("fock").orbital_energies(np.eye(3))


def test_projection_settings_come_from_the_config():
    cfg = compose_config(["+experiment=water", "projection.extra_candidates=10", "projection.core_orbitals.8=0"])
    target = target_from_config(cfg)
    assert target.projection == ProjectionSettings(extra_candidates=10, core_orbitals={1: 0, 6: 1, 7: 1, 8: 0})
    assert target_from_config(compose_config(["+experiment=water"])).projection == ProjectionSettings()


def test_model_basis_must_be_the_targets():
    with pytest.raises(InputError, match="'def2-svp/minimal', not 'def2-svp'"):
        HamiltonianModel(WATER_BASIS, [1, 8], target=Target("saph"))


@pytest.fixture(scope="module")
def fock_run(tmp_path_factory):
    """A water ``fock`` run: training frames 0-9, test frames 10-11, with its metrics."""
    run_dir = tmp_path_factory.mktemp("fock-ao-run")
    metrics = train_water_run(run_dir, reference_cache(tmp_path_factory), "+experiment=water_fock_ao")
    return run_dir, metrics


@pytest.fixture(scope="module")
def test_records(tmp_path_factory):
    frames = read_frames(WATER, "10:12")
    return frames, build_reference_set(
        frames, SETTINGS, ProjectionSettings(), reference_cache(tmp_path_factory), n_workers=1, progress=False
    )


def test_reference_fock_generalized_eigenvalues_are_pyscfs(test_records):
    frames, records = test_records
    for atoms, record in zip(frames, records, strict=True):
        energies = Target("fock").orbital_energies(record.fock, overlap_matrix(atoms, SETTINGS))
        np.testing.assert_allclose(energies, record.mo_energy, atol=1e-8)


def test_fock_predictions_give_pyscf_orbital_energies_to_the_models_accuracy(fock_run, test_records, tmp_path):
    run_dir, metrics = fock_run
    frames, records = test_records
    model = HamiltonianModel.load(run_dir / "model.pt")
    assert model.target == Target("fock") and model.basis.name == "def2-svp"
    output = predict_main([str(run_dir / "model.pt"), str(WATER), "--index", "10:12", "-o", str(tmp_path / "out.h5")])
    with h5py.File(output) as file:
        assert file.attrs["target"] == "fock"
        written = [file[name]["orbital_energies"][()] for name in sorted(file)]
        matrices = [file[name]["matrix"][()] for name in sorted(file)]
    occupied = np.concatenate([e[:5] - r.mo_energy[:5] for e, r in zip(written, records, strict=True)])
    assert np.abs(occupied).mean() * HARTREE_TO_MEV == pytest.approx(metrics["occupied_energy_mae_mev"], rel=1e-6)
    assert metrics["occupied_energy_mae_mev"] < 100
    for energies, matrix, atoms in zip(written, matrices, frames, strict=True):
        np.testing.assert_allclose(energies, scipy.linalg.eigh(matrix, overlap_matrix(atoms, SETTINGS))[0], atol=1e-10)
        assert np.abs(np.linalg.eigvalsh(matrix) - energies).max() > 0.1  # the overlap matters


def test_fock_evaluation_and_start_guess_use_the_overlap(fock_run, tmp_path):
    run_dir, metrics = fock_run
    evaluation = evaluate_main([str(run_dir), "--output", str(tmp_path / "evaluation"), "--n-workers", "1"])
    assert evaluation["target"] == "fock"
    assert evaluation["occupied_energy_mae_mev"] == pytest.approx(metrics["occupied_energy_mae_mev"], rel=1e-6)
    assert evaluation["occupied_similarity_min"] > 0.9
    atoms = read_frames(WATER, "11")[0]
    density = predicted_density(HamiltonianModel.load(run_dir / "model.pt"), atoms, SETTINGS)
    from nhamil.reference.scf import build_molecule

    assert np.trace(density @ build_molecule(atoms, SETTINGS).intor("int1e_ovlp")) == pytest.approx(10.0, abs=1e-9)


@pytest.fixture(scope="module")
def fock_models(tmp_path_factory):
    """AO ``fock`` models fitted in code on 10 frames, with the SAP baseline and without one."""
    frames = read_frames(WATER, ":12")
    records = build_reference_set(
        frames, SETTINGS, ProjectionSettings(), reference_cache(tmp_path_factory), n_workers=1, progress=False
    )
    fock = [torch.as_tensor(r.fock) for r in records]
    models = {
        baseline: HamiltonianModel(WATER_BASIS, [1, 8], target=Target("fock"), features=SMALL, baseline=baseline).fit(
            frames[:10], fock[:10], progress=False
        )
        for baseline in ("sap", None)
    }
    return models, frames, fock


@pytest.mark.parametrize("baseline", ["sap", None])
def test_fock_model_follows_rotation_inversion_and_permutation(fock_models, baseline):
    models, frames, _ = fock_models
    assert models[baseline].predict([frames[11]])[0].abs().max() > 1e-3
    assert_equivariant(models[baseline], [frames[11]], seed=3, atol=1e-9)


def test_fock_model_learns_the_difference_to_the_ao_sap_baseline(fock_models, tmp_path):
    models, frames, fock = fock_models
    errors = {
        baseline: max(float((p - f).abs().max()) for p, f in zip(model.predict(frames[10:]), fock[10:], strict=True))
        for baseline, model in models.items()
    }
    assert errors["sap"] < 0.5 * errors[None]
    models["sap"].save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    assert restored.baseline == "sap" and restored.target == Target("fock")
    torch.testing.assert_close(restored.predict(frames[10:]), models["sap"].predict(frames[10:]), atol=0, rtol=0)


def test_string_target_means_rhf_in_the_models_basis():
    minimal = ProjectionSettings().minimal_basis(WATER_BASIS)
    assert HamiltonianModel(minimal, [1, 8], target="saph").target == Target("saph", ScfSettings(basis="def2-svp"))
    sto3g = HamiltonianModel(AtomicBasis.from_pyscf("sto-3g", [1, 8]), [1, 8], target="fock")
    assert sto3g.target == Target("fock", ScfSettings(basis="sto-3g")) and f"{sto3g.target}" == "fock"
