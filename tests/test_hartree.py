"""The self-consistent Hartree term: the reference is its loop's fixed point, a model's
predictions solve F = fixed + J[P(F) - P_minao] and follow rotations, inversion and atom
permutations, checkpoints keep it, and bad settings, open shells, a loop that fails and
impossible combinations are refused by name, a failed loop keeping the fit."""

from dataclasses import replace

import numpy as np
import pytest
from water_fock_run import WATER, reference_cache, train_water_run

from nhamil.config import compose_config
from nhamil.errors import InputError
from nhamil.model import HamiltonianModel, check_hartree_target
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ScfSettings, lowdin_orthogonalize, read_frames, run_scf
from nhamil.reference.hartree import HartreeNotConverged, HartreeSettings, HartreeTerm
from nhamil.targets import Target
from nhamil.testing import assert_equivariant
from nhamil.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])
TIGHT_RHF = ScfSettings(conv_tol=1e-12)
HARTREE_RUN = ("+experiment=water_fock", "baseline=minao", "hartree.enabled=true")


@pytest.fixture(scope="module")
def water():
    """A water frame, tightly converged at RHF/def2-SVP (canonical AO order)."""
    atoms = read_frames(WATER, "3:4")[0]
    return atoms, run_scf(atoms, TIGHT_RHF)


@pytest.fixture(scope="module")
def hartree_run(tmp_path_factory):
    """A small water model (orthogonal Fock, minao baseline) with a Hartree term: its run folder."""
    run_dir = tmp_path_factory.mktemp("hartree-run")
    metrics = train_water_run(run_dir, reference_cache(tmp_path_factory), *HARTREE_RUN)
    assert metrics["hartree"] is True
    return run_dir


@pytest.mark.parametrize("orthogonal", [False, True])
def test_the_reference_is_the_fixed_point_of_the_loop(water, orthogonal):
    atoms, result = water
    fock = lowdin_orthogonalize(result.fock, result.overlap) if orthogonal else result.fock
    term = HartreeTerm(BASIS, TIGHT_RHF, orthogonal, HartreeSettings(tolerance=1e-10))
    hartree = term.of_reference(atoms, fock, result.overlap)
    assert np.abs(hartree).max() > 1e-3  # the moved charge has a potential worth learning
    solution = term.solve(fock - hartree, atoms, result.overlap)
    assert np.abs(solution.fock - fock).max() < 1e-8
    assert solution.cycles > 2  # from the minao density, not handed the answer


def test_predictions_solve_the_hartree_equation(hartree_run):
    """F = baseline + heads + J[P(F) - P_minao], against the same heads without the loop."""
    model = HamiltonianModel.load(hartree_run / "model.pt")
    frames = read_frames(WATER, "10:12")
    baselines = model.baselines(frames)
    solved = [p.numpy() for p in model.predict(frames, baselines=baselines)]
    local = replace_hartree(model, None)
    fixed = [p.numpy() for p in local.predict(frames, baselines=baselines)]
    term = model.hartree_term()
    for atoms, fock, rest, overlap in zip(frames, solved, fixed, baselines.overlaps, strict=True):
        assert np.abs(fock - rest).max() > 1e-4  # the loop moved the prediction
        np.testing.assert_allclose(fock - rest, term.of_reference(atoms, fock, overlap), atol=1e-7)


def replace_hartree(model: HamiltonianModel, settings: HartreeSettings | None) -> HamiltonianModel:
    """A copy of ``model`` (through its state) with the Hartree term ``settings``."""
    state = model.state_dict()
    state["hartree"] = None if settings is None else settings.to_dict()
    return HamiltonianModel.from_state_dict(state)


def test_predictions_follow_rotations_inversions_and_permutations(hartree_run):
    model = HamiltonianModel.load(hartree_run / "model.pt")
    atoms = read_frames(WATER, "11:12")[0]
    assert_equivariant(model, [atoms], seed=5, atol=1e-10)


def test_the_checkpoint_keeps_the_settings(hartree_run):
    model = HamiltonianModel.load(hartree_run / "model.pt")
    assert model.hartree == HartreeSettings()
    tighter = replace_hartree(model, HartreeSettings(max_cycle=30, tolerance=1e-9, diis_space=6))
    assert HamiltonianModel.from_state_dict(tighter.state_dict()).hartree == tighter.hartree


def test_a_loop_that_does_not_converge_is_named(hartree_run):
    model = replace_hartree(HamiltonianModel.load(hartree_run / "model.pt"), HartreeSettings(max_cycle=2))
    frames = read_frames(WATER, "10:12")
    with pytest.raises(HartreeNotConverged, match=r"^the Hartree loop of structure 0 did not converge in 2 J builds"):
        model.predict(frames)


def test_a_failed_loop_in_training_keeps_the_fit(tmp_path, tmp_path_factory):
    with pytest.raises(HartreeNotConverged, match="did not converge in 1 J builds"):
        train_water_run(tmp_path, reference_cache(tmp_path_factory), *HARTREE_RUN, "hartree.max_cycle=1")
    assert HamiltonianModel.load(tmp_path / "model.pt").hartree == HartreeSettings(max_cycle=1)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_cycle": 0}, r"hartree.max_cycle=0 must be at least 1"),
        ({"tolerance": 0.0}, r"hartree.tolerance=0.0 Ha must be a positive number"),
        ({"tolerance": float("nan")}, r"hartree.tolerance=nan Ha must be a positive number"),
        ({"diis_space": 0}, r"hartree.diis_space=0 must be at least 1"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with pytest.raises(InputError, match=message):
        HartreeSettings(**settings)


def test_open_shells_are_refused(water):
    atoms, result = water
    radical = atoms[:2]  # OH
    term = HartreeTerm(BASIS, TIGHT_RHF, False)
    with pytest.raises(InputError, match=r"the Hartree term needs a closed shell; HO has 9 electrons"):
        term.of_reference(radical, result.fock[:19, :19], result.overlap[:19, :19])


@pytest.mark.parametrize(
    ("target", "baseline", "message"),
    [
        ("saph", "minao", r"the Hartree term needs a full Fock model .* not 'saph'"),
        ("fock_orthogonal", None, r"the Hartree term needs a baseline"),
    ],
)
def test_impossible_combinations_are_refused(target, baseline, message):
    with pytest.raises(InputError, match=message):
        check_hartree_target(baseline, Target.named(target, "def2-svp"))


def test_fine_tuning_is_refused_before_any_work(tmp_path):
    cfg = compose_config([*HARTREE_RUN, "finetune.epochs=1", f"data.cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(InputError, match=r"cannot be fine-tuned: set finetune.epochs=0"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "cache").exists()


def test_the_target_form_does_not_change_the_solution(water):
    """The AO and the Löwdin forms of one fixed part solve to the same Fock matrix."""
    atoms, result = water
    ao = HartreeTerm(BASIS, TIGHT_RHF, False, HartreeSettings(tolerance=1e-10))
    orthogonal = replace(ao, orthogonal=True)
    fixed = result.fock - ao.of_reference(atoms, result.fock, result.overlap) + 1e-3 * np.eye(len(result.fock))
    from_ao = ao.solve(fixed, atoms, result.overlap).fock
    from_orthogonal = orthogonal.solve(lowdin_orthogonalize(fixed, result.overlap), atoms, result.overlap).fock
    np.testing.assert_allclose(lowdin_orthogonalize(from_ao, result.overlap), from_orthogonal, atol=1e-9)
