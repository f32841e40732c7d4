"""One damped Fock build from a prediction: F[P] is PySCF's, exactly equivariant on a DFT grid,
a converged Fock matrix is its fixed point, the command line evaluates it, and bad mixings,
open shells and non-Fock models are refused by name."""

import json
from dataclasses import replace

import ase
import numpy as np
import pytest
from water_fock_run import WATER, water_fock_run

from nhamil.errors import InputError
from nhamil.evaluate.__main__ import main as evaluate_main
from nhamil.evaluate.refinement import Mixing, check_mixing, check_refinable, mixed, rebuilt_fock, rebuilt_predictions
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference import ScfSettings, lowdin_orthogonalize, read_frames, run_scf
from nhamil.reference.baseline import baseline_fock
from nhamil.reference.fock_build import fock_of_density
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.testing import assert_equivariant

pytestmark = pytest.mark.usefixtures("one_thread")
BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])
TIGHT_RHF = ScfSettings(conv_tol=1e-12)
PBE = ScfSettings(method="rks", xc="pbe")


@pytest.fixture(scope="module")
def water():
    """A water frame, tightly converged at RHF/def2-SVP (canonical AO order)."""
    atoms = read_frames(WATER, "3:4")[0]
    return atoms, run_scf(atoms, TIGHT_RHF)


def _density(result) -> np.ndarray:
    occupied = result.mo_coeff[:, result.mo_occ > 0]
    return 2.0 * occupied @ occupied.T


def test_fock_of_density_is_pyscfs_build_in_the_laboratory_frame(water):
    """RHF has no grid, so the principal-frame build must equal PySCF's own in the lab frame."""
    atoms, result = water
    solver = make_solver(build_molecule(atoms, TIGHT_RHF), TIGHT_RHF)
    order = pyscf_to_canonical(BASIS, atoms.numbers)
    inverse = np.argsort(order)
    density = _density(result)
    expected = np.asarray(solver.get_fock(dm=density[np.ix_(inverse, inverse)]))[np.ix_(order, order)]
    np.testing.assert_allclose(fock_of_density(atoms, BASIS, TIGHT_RHF, density), expected, atol=1e-11)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_a_converged_fock_matrix_is_the_fixed_point(water, orthogonal):
    atoms, result = water
    fock = lowdin_orthogonalize(result.fock, result.overlap) if orthogonal else result.fock
    rebuilt = rebuilt_fock(fock, atoms, result.overlap, BASIS, TIGHT_RHF, orthogonal)
    assert np.abs(rebuilt - fock).max() < 1e-6
    perturbed = fock + 1e-3 * np.eye(len(fock))[::-1]
    moved = rebuilt_fock(perturbed, atoms, result.overlap, BASIS, TIGHT_RHF, orthogonal)
    assert np.abs(moved - fock).max() > 1e-5  # the perturbation reaches the density


def test_refined_pbe_fock_follows_rotations_inversions_and_permutations():
    """Refining an equivariant Fock guess (SAP) on PBE's grid stays equivariant to round-off."""
    atoms = read_frames(WATER, "5:6")[0]

    def refined(frames):
        guesses = [baseline_fock("sap", a, BASIS) for a in frames]
        rebuilt = rebuilt_predictions(
            [g[0] for g in guesses], frames, [g[1] for g in guesses], BASIS, PBE, False, progress=False
        )
        return mixed([g[0] for g in guesses], rebuilt, Mixing(0.3, onsite=0.1), BASIS, [a.numbers for a in frames])

    assert_equivariant(refined, [atoms], basis=BASIS, seed=3, atol=1e-10)


def test_mixing_interpolates_between_prediction_and_build_per_block_family():
    oh = np.array([8, 1])  # O: 14 AOs, H: 5 in def2-SVP
    prediction, build = [np.ones((19, 19))], [3.0 * np.ones((19, 19))]
    np.testing.assert_allclose(mixed(prediction, build, Mixing(0.25), BASIS, [oh])[0], 1.5)
    both = mixed(prediction, build, Mixing(1.0, onsite=0.0), BASIS, [oh])[0]
    onsite = np.zeros((19, 19), bool)
    onsite[:14, :14] = onsite[14:, 14:] = True
    np.testing.assert_allclose(both[onsite], 1.0)
    np.testing.assert_allclose(both[~onsite], 3.0)


@pytest.mark.parametrize("mixing", [0.0, -0.1, 1.5, float("nan")])
def test_a_mixing_outside_zero_to_one_is_refused(mixing):
    with pytest.raises(InputError, match=r"mixing .* must lie in \(0, 1\]"):
        check_mixing(mixing)
    with pytest.raises(InputError, match=r"^refinement mixing"):
        Mixing(mixing)


def test_the_onsite_mixing_may_be_zero_but_not_outside_zero_to_one():
    assert Mixing(0.5, onsite=0.0).onsite == 0.0
    with pytest.raises(InputError, match=r"on-site refinement mixing 1.5 must lie in \[0, 1\]"):
        Mixing(0.5, onsite=1.5)


def test_an_open_shell_is_refused_by_name():
    radical = ase.Atoms("OH", [[0, 0, 0], [0, 0, 0.97]])
    fock, overlap = baseline_fock("sap", radical, BASIS)
    with pytest.raises(InputError, match="closed shell; HO has 9 electrons"):
        rebuilt_fock(fock, radical, overlap, BASIS, TIGHT_RHF, False)


def test_a_model_of_another_target_is_refused(tmp_path_factory):
    model = HamiltonianModel.load(water_fock_run(tmp_path_factory) / "model.pt")
    check_refinable(model)
    model.target = replace(model.target, name="saph")
    with pytest.raises(InputError, match="full Fock model .* not 'saph'"):
        check_refinable(model)


def test_command_line_evaluates_the_refined_matrices(tmp_path_factory, tmp_path, capsys):
    run_dir = water_fock_run(tmp_path_factory)
    plain = evaluate_main([str(run_dir), "--output", str(tmp_path / "plain"), "--n-workers", "1"])
    options = ["--n-workers", "1", "--refine-mixing", "0.5", "--refine-onsite-mixing", "0.2"]
    refined = evaluate_main([str(run_dir), "--output", str(tmp_path / "refined"), *options])
    written = json.loads((tmp_path / "refined" / "evaluation.json").read_text())
    assert written["refinement_mixing"] == 0.5 and written["refinement_onsite_mixing"] == 0.2
    assert written["fock_build_seconds_per_structure"] > 0
    assert written["fock_ao_mae_uha"] == pytest.approx(refined["fock_ao_mae_uha"])
    assert refined["fock_ao_mae_uha"] != pytest.approx(plain["fock_ao_mae_uha"], rel=1e-3)
    with pytest.raises(SystemExit):
        evaluate_main([str(run_dir), "--output", str(tmp_path / "bad"), "--refine-mixing", "2"])
    assert "nhamil.evaluate: error: refinement mixing 2.0 must lie in (0, 1]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main([str(run_dir), "--output", str(tmp_path / "bad"), "--refine-onsite-mixing", "0.2"])
    assert "--refine-onsite-mixing needs --refine-mixing" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
