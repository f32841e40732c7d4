"""The baselines are Fock matrices that move with the molecule and hold most of the SCF Fock
matrix (F[D_minao] more than SAP); a model that learns the difference to one keeps every
symmetry and learns better."""

import ase
import ase.build
import numpy as np
import pytest
import torch
from water_fock_run import WATER, reference_cache

from nhamil.errors import InputError
from nhamil.features import DensitySettings
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.reference.baseline import Baseline, baseline_fock
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.scf_guess import initial_density
from nhamil.testing import assert_equivariant

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = FeatureSettings(density=DensitySettings(max_radial=3, max_angular=3))
WATER_BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])


def _water_fock(tmp_path_factory, frames):
    records = build_reference_set(
        frames, ScfSettings(), ProjectionSettings(), reference_cache(tmp_path_factory), n_workers=1, progress=False
    )
    return [torch.as_tensor(lowdin_orthogonalize(r.fock, r.overlap)) for r in records]


@pytest.fixture(scope="module")
def water_models(tmp_path_factory):
    """Models fitted on 10 water Fock matrices, relative to each baseline and without one, with
    the frames and reference matrices: training 0-9, held out 10-11."""
    frames = read_frames(WATER, ":12")
    fock = _water_fock(tmp_path_factory, frames)
    models = {
        baseline: HamiltonianModel(
            WATER_BASIS, [1, 8], target="fock_orthogonal", features=SMALL, baseline=baseline
        ).fit(frames[:10], fock[:10], progress=False)
        for baseline in ("sap", "minao", None)
    }
    return models, frames, fock


def test_sap_baseline_follows_rotation_inversion_and_permutation():
    atoms = ase.build.molecule("CH3CH2OH")
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)

    def fock(frames):
        return [baseline_fock("sap", a, basis)[0] for a in frames]

    def overlap(frames):
        return [baseline_fock("sap", a, basis)[1] for a in frames]

    assert_equivariant(fock, [atoms], basis=basis, seed=5, atol=1e-10)
    assert_equivariant(overlap, [atoms], basis=basis, seed=5, atol=1e-12)


def test_minao_baseline_follows_rotation_inversion_and_permutation_on_a_dft_grid():
    """PySCF's grids are fixed in the laboratory frame (2e-5 Ha off under rotation for ethanol at
    PBE); the baseline, built in the principal-axes frame, is equivariant to round-off."""
    atoms = ase.build.molecule("CH3CH2OH")
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)
    pbe = ScfSettings(method="rks", xc="pbe")

    def fock(frames):
        return [baseline_fock("minao", a, basis, pbe)[0] for a in frames]

    assert_equivariant(fock, [atoms], basis=basis, seed=5, atol=1e-10)


def test_minao_baseline_is_closer_to_the_fock_matrix_than_sap(tmp_path_factory):
    atoms = read_frames(WATER, "10")[0]
    (fock,) = _water_fock(tmp_path_factory, [atoms])
    distance = {
        name: np.linalg.norm(fock.numpy() - Baseline(name, WATER_BASIS, orthogonal=True).compute([atoms]).matrices[0])
        for name in ("sap", "minao")
    }
    assert distance["minao"] < 0.5 * distance["sap"]


def test_baseline_in_another_basis_than_its_level_of_theory_is_refused():
    atoms = read_frames(WATER, "10")[0]
    with pytest.raises(ValueError, match="'def2-tzvp'"):
        baseline_fock("minao", atoms, WATER_BASIS, ScfSettings(basis="def2-tzvp"))


def test_sap_baseline_holds_most_of_the_fock_matrix(tmp_path_factory):
    """h + V_SAP is far closer to the converged Fock matrix than the core Hamiltonian h alone."""
    atoms = read_frames(WATER, "10")[0]
    (fock,) = _water_fock(tmp_path_factory, [atoms])
    molecule = build_molecule(atoms, ScfSettings())
    order = np.ix_(*2 * [pyscf_to_canonical(WATER_BASIS, atoms.numbers)])
    core = molecule.intor("int1e_kin") + molecule.intor("int1e_nuc")
    core = lowdin_orthogonalize(core[order], molecule.intor("int1e_ovlp")[order])
    (sap,) = Baseline("sap", WATER_BASIS, orthogonal=True).compute([atoms]).matrices
    assert np.linalg.norm(fock.numpy() - sap) < 0.2 * np.linalg.norm(fock.numpy() - core)


@pytest.mark.parametrize("baseline", ["sap", "minao"])
def test_model_with_baseline_follows_rotation_inversion_and_permutation(water_models, baseline):
    models, frames, _ = water_models
    assert_equivariant(models[baseline], [frames[11]], seed=7, atol=1e-10)


def test_baseline_is_added_back_and_makes_the_model_better(water_models):
    """Without the baseline added back, the predictions would miss nearly all of the Fock matrix."""
    models, frames, fock = water_models
    errors = {
        baseline: max(float((p - f).abs().max()) for p, f in zip(model.predict(frames[10:]), fock[10:], strict=True))
        for baseline, model in models.items()
    }
    assert errors["sap"] < 0.5 * errors[None]
    assert errors["minao"] < errors["sap"]


def test_checkpoint_keeps_the_baseline(water_models, tmp_path):
    models, frames, _ = water_models
    models["sap"].save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    assert restored.baseline == "sap"
    torch.testing.assert_close(restored.predict(frames[10:]), models["sap"].predict(frames[10:]), atol=0, rtol=0)


def test_baseline_for_a_saph_model_or_an_unknown_one_is_refused():
    minimal = ProjectionSettings().minimal_basis(WATER_BASIS)
    with pytest.raises(ValueError, match="fock_orthogonal"):
        HamiltonianModel(minimal, [1, 8], target="saph", baseline="sap")
    with pytest.raises(ValueError, match="'huckel'"):
        HamiltonianModel(WATER_BASIS, [1, 8], target="fock_orthogonal", baseline="huckel")


def test_minao_baseline_of_a_solver_at_the_model_level_equals_its_own_and_no_other_level_is_used(water_models):
    """``Baseline.of_solver`` builds F[D_minao] with the SCF's solver only at the baseline's level."""
    models, frames, _ = water_models
    stage, atoms = models["minao"].baseline_stage(), frames[11]
    molecule = build_molecule(atoms, ScfSettings())
    np.testing.assert_allclose(
        stage.of_solver(make_solver(molecule, ScfSettings())), stage.compute([atoms]).matrices[0], atol=1e-10
    )
    for other in (ScfSettings(method="rks", xc="pbe"), ScfSettings(density_fit=True)):
        assert stage.of_solver(make_solver(molecule, other)) is None
    assert models["sap"].baseline_stage().of_solver(make_solver(molecule, ScfSettings())) is None


def test_start_density_through_the_scf_solver_is_the_start_density_of_the_model(water_models):
    """``initial_density(model, mol, solver)`` shares the solver's integrals, not its answer."""
    models, frames, _ = water_models
    molecule = build_molecule(frames[11], ScfSettings())
    solver = make_solver(molecule, ScfSettings())
    np.testing.assert_allclose(
        initial_density(models["minao"], molecule, solver), initial_density(models["minao"], molecule), atol=1e-10
    )
    with pytest.raises(InputError, match="another Mole"):
        initial_density(models["minao"], build_molecule(frames[10], ScfSettings()), solver)
