"""SCF start guesses: the predicted density is a valid closed-shell density, converges to the
same state as PySCF's guesses, and in fewer cycles the better the prediction."""

import numpy as np
import pytest
from water_fock_run import WATER, reference_cache, water_fock_run

from nhamil import scf_guess
from nhamil.errors import InputError
from nhamil.evaluate import density_matrix, orbitals_from_orthogonal, to_pyscf_order
from nhamil.inference import Predictor
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.scf_guess import (
    MODEL_GUESS,
    compare_guesses,
    initial_density,
    predicted_density,
    run_from_guess,
    summarize_runs,
)

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


def test_a_composition_seen_once_pays_its_predictor_in_its_guess_time(model, monkeypatch):
    """A library of molecules (each composition once) builds each Predictor inside the timed
    guess; frames of one composition share one built beforehand. The second frame's atoms are the
    first's in another order (a composition of its own) and start the same SCF."""
    built = []

    class CountingPredictor(Predictor):
        def __init__(self, model, numbers):
            built.append(tuple(numbers))
            super().__init__(model, numbers)

    monkeypatch.setattr(scf_guess, "Predictor", CountingPredictor)
    atoms = read_frames(WATER, "10")[0]
    compare_guesses(model, [atoms, atoms], SETTINGS, guesses=(), progress=False)
    assert len(built) == 1
    built.clear()
    runs = compare_guesses(model, [atoms, atoms[[1, 0, 2]]], SETTINGS, guesses=("minao",), progress=False)
    assert len(built) == 2  # one per model guess, inside initial_density
    first, reordered = runs[0], runs[2]
    assert first.guess == reordered.guess == MODEL_GUESS and first.converged and reordered.converged
    assert first.n_cycles == reordered.n_cycles < runs[1].n_cycles
    assert reordered.e_tot == pytest.approx(first.e_tot, abs=1e-9)


def test_saph_model_is_refused():
    basis = ProjectionSettings().minimal_basis(AtomicBasis.from_pyscf("def2-svp", [1, 8]))
    with pytest.raises(ValueError, match="fock_orthogonal"):
        predicted_density(HamiltonianModel(basis, [1, 8], target="saph"), read_frames(WATER, "0")[0], SETTINGS)


def _water_mole(atoms, **options):
    """A PySCF Mole of ``atoms`` built the way a user builds one."""
    from pyscf import gto

    atom = list(zip(atoms.get_chemical_symbols(), atoms.positions.tolist(), strict=True))
    return gto.M(atom=atom, verbose=0, **options)


def test_initial_density_of_a_mole_starts_rhf_at_the_minao_energy_in_fewer_cycles(model):
    """``mf.kernel(dm0=initial_density(model, mol))``: PySCF's AO order, the same converged state."""
    from pyscf import scf

    atoms = read_frames(WATER, "11")[0]
    mol = _water_mole(atoms, basis="def2-svp")
    density = initial_density(model, mol)
    np.testing.assert_allclose(density, predicted_density(model, atoms, SETTINGS), atol=1e-10)
    np.testing.assert_allclose(initial_density(Predictor(model, mol.atom_charges()), mol), density, atol=1e-12)
    runs = {}
    for name, guess in (("model", density), ("minao", None)):
        mf = scf.RHF(mol)
        mf.conv_tol, cycles = SETTINGS.conv_tol, []
        mf.callback = lambda envs, cycles=cycles: cycles.append(envs["cycle"])
        runs[name] = (mf.kernel(dm0=guess), len(cycles), mf.converged)
    assert runs["model"][2] and runs["minao"][2]
    assert runs["model"][0] == pytest.approx(runs["minao"][0], abs=1e-8)
    assert runs["model"][1] < runs["minao"][1]


def test_initial_density_refuses_open_shells_other_bases_and_other_molecules(model):
    atoms = read_frames(WATER, "11")[0]
    with pytest.raises(InputError, match="closed shell"):
        initial_density(model, _water_mole(atoms, basis="def2-svp", charge=1, spin=1))
    with pytest.raises(InputError, match="sto-3g"):
        initial_density(model, _water_mole(atoms, basis="sto-3g"))
    with pytest.raises(InputError, match="build a Predictor"):
        initial_density(Predictor(model, [1, 8, 1]), _water_mole(atoms, basis="def2-svp"))
