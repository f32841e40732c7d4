"""SCF start guesses: the predicted density is a valid closed-shell density, converges to the
same state as PySCF's guesses, and in fewer cycles the better the prediction."""

import numpy as np
import pytest
from water_fock_run import WATER, reference_cache, water_fock_run

from nhamil.evaluate import density_matrix, orbitals_from_orthogonal, to_pyscf_order
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.scf_guess import MODEL_GUESS, compare_guesses, predicted_density, run_from_guess, summarize_runs

SETTINGS = ScfSettings(conv_tol=1e-9)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    run = water_fock_run(tmp_path_factory)
    return HamiltonianModel.load(run / "model.pt")


def test_exact_density_converges_at_once_to_the_same_energy(tmp_path_factory):
    atoms = read_frames(WATER, "10")[0]
    cache = reference_cache(tmp_path_factory)
    (record,) = build_reference_set([atoms], ScfSettings(), ProjectionSettings(), cache, n_workers=1, progress=False)
    orbitals = orbitals_from_orthogonal(lowdin_orthogonalize(record.fock, record.overlap), record.overlap, 5)
    density = to_pyscf_order(density_matrix(orbitals), AtomicBasis.from_pyscf("def2-svp", [1, 8]), atoms.numbers)
    exact, minao = run_from_guess(atoms, SETTINGS, density, "exact"), run_from_guess(atoms, SETTINGS, "minao")
    assert exact.converged and minao.converged
    assert exact.e_tot == pytest.approx(minao.e_tot, abs=1e-8) == pytest.approx(record.e_tot, abs=1e-8)
    assert exact.n_cycles <= 2 < minao.n_cycles


def test_predicted_density_is_a_closed_shell_density(model):
    atoms = read_frames(WATER, "11")[0]
    density = predicted_density(model, atoms, SETTINGS)
    from nhamil.reference.scf import build_molecule

    overlap = build_molecule(atoms, SETTINGS).intor("int1e_ovlp")
    np.testing.assert_allclose(density, density.T, atol=1e-12)
    assert np.trace(density @ overlap) == pytest.approx(10.0, abs=1e-9)
    np.testing.assert_allclose(density @ overlap @ density, 2 * density, atol=1e-9)  # idempotent: P S P = 2 P


def test_model_guess_beats_minao_and_reaches_the_same_state(model):
    runs = compare_guesses(model, read_frames(WATER, "10:12"), SETTINGS, guesses=("minao", "1e"), progress=False)
    assert [run.guess for run in runs] == [MODEL_GUESS, "minao", "1e"] * 2
    assert all(run.converged for run in runs)
    for frame in (runs[:3], runs[3:]):
        assert max(run.e_tot for run in frame) - min(run.e_tot for run in frame) < 1e-7
        assert frame[0].guess_seconds > 0 and frame[1].guess_seconds == 0
    summary = summarize_runs(runs)
    assert summary[MODEL_GUESS]["cycles_mean"] < summary["minao"]["cycles_mean"]
    assert summary["minao"]["cycles_mean"] == np.mean([run.n_cycles for run in runs if run.guess == "minao"])
    assert sum(summary["1e"]["cycles_histogram"].values()) == summary["1e"]["n"] == 2
    model_totals = [run.total_seconds for run in runs if run.guess == MODEL_GUESS]
    assert summary[MODEL_GUESS]["total_seconds_median"] == np.median(model_totals)


def test_saph_model_is_refused():
    basis = ProjectionSettings().minimal_basis(AtomicBasis.from_pyscf("def2-svp", [1, 8]))
    with pytest.raises(ValueError, match="fock_orthogonal"):
        predicted_density(HamiltonianModel(basis, [1, 8], target="saph"), read_frames(WATER, "0")[0], SETTINGS)
