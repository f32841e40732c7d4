"""Evaluation: every physical quantity by two routes, its symmetry law, and the command line."""

import dataclasses
import json
import runpy
import sys

import ase
import numpy as np
import pytest
import torch
from water_fock_run import WATER, reference_cache, train_water_run, water_fock_run

from nhamil.config import compose_config
from nhamil.evaluate import (
    Orbitals,
    ao_fock,
    block_type_errors,
    density_matrix,
    dipole_moment,
    errors_by_size,
    evaluate_structure,
    occupied_similarity,
    onsite_shift_errors,
    orbitals_from_orthogonal,
    overlap_matrix,
    per_state_mae,
    solve_orbitals,
    split_frames,
    summarize,
)
from nhamil.evaluate.__main__ import main as evaluate_main
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis, basis_wigner, random_rotation
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.reference.scf import build_molecule, make_solver

SETTINGS = ScfSettings()


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    """Two water frames with their RHF/def2-SVP records (session-wide cache)."""
    frames = read_frames(WATER, ":2")
    cache = reference_cache(tmp_path_factory)
    return frames, build_reference_set(frames, SETTINGS, ProjectionSettings(), cache, n_workers=1, progress=False)


def _orthogonal(record):
    return lowdin_orthogonalize(record.fock, record.overlap)


def test_orbitals_of_orthogonal_fock_match_generalized_problem_and_pyscf(water):
    _, (record, _) = water
    via_orthogonal = orbitals_from_orthogonal(_orthogonal(record), record.overlap, record.n_occupied)
    generalized = solve_orbitals(ao_fock(_orthogonal(record), record.overlap), record.n_occupied, record.overlap)
    np.testing.assert_allclose(via_orthogonal.energies, generalized.energies, atol=1e-10)
    np.testing.assert_allclose(via_orthogonal.energies, record.mo_energy, atol=1e-8)
    assert via_orthogonal.gap == pytest.approx(record.mo_energy[5] - record.mo_energy[4], abs=1e-8)
    density = density_matrix(via_orthogonal)
    assert np.trace(density @ record.overlap) == pytest.approx(10.0, abs=1e-10)


def test_overlap_from_integrals_is_the_scf_overlap(water):
    (atoms, _), (record, _) = water
    np.testing.assert_allclose(overlap_matrix(atoms, SETTINGS), record.overlap, atol=1e-12)


def test_dipole_of_reference_density_is_pyscfs(water):
    (atoms, _), (record, _) = water
    solver = make_solver(build_molecule(atoms, SETTINGS), SETTINGS)
    solver.kernel()
    expected = solver.dip_moment(unit="Debye", verbose=0)
    density = density_matrix(orbitals_from_orthogonal(_orthogonal(record), record.overlap, record.n_occupied))
    np.testing.assert_allclose(dipole_moment(atoms, density, SETTINGS), expected, atol=1e-5)
    assert np.linalg.norm(expected) > 1.0


@pytest.mark.parametrize("improper", [False, True])
def test_dipole_rotates_with_the_molecule(water, improper):
    (atoms, _), (record, _) = water
    rotation = random_rotation(torch.Generator().manual_seed(3), improper=improper)
    wigner = basis_wigner(AtomicBasis.from_pyscf("def2-svp", atoms.numbers), atoms.numbers, rotation).numpy()
    density = density_matrix(orbitals_from_orthogonal(_orthogonal(record), record.overlap, record.n_occupied))
    moved = ase.Atoms(atoms.numbers, atoms.positions @ rotation.numpy().T)
    np.testing.assert_allclose(
        dipole_moment(moved, wigner @ density @ wigner.T, SETTINGS),
        rotation.numpy() @ dipole_moment(atoms, density, SETTINGS),
        atol=1e-8,
    )


def test_perfect_prediction_scores_perfectly_and_a_shift_is_seen(water):
    frames, records = water
    exact = [
        evaluate_structure(_orthogonal(r), r, a, "fock_orthogonal", SETTINGS)
        for a, r in zip(frames, records, strict=True)
    ]
    summary = summarize(exact)
    assert summary["energy_mae_mev"] < 1e-4 and summary["dipole_component_mae_debye"] < 1e-6
    assert summary["occupied_similarity_min"] == pytest.approx(1.0, abs=1e-10)
    shifted = [
        evaluate_structure(_orthogonal(r) + 0.01 * np.eye(len(r.fock)), r, a, "fock_orthogonal", SETTINGS)
        for a, r in zip(frames, records, strict=True)
    ]
    shift = summarize(shifted)
    assert shift["energy_mae_mev"] == pytest.approx(0.01 * 27211.386, rel=1e-5)
    assert shift["gap_mae_mev"] < 1e-4 and shift["dipole_component_mae_debye"] < 1e-6
    assert shift["state_energy_mae_mev"] == pytest.approx([0.01 * 27211.386] * 24, rel=1e-5)


def test_structures_of_different_sizes_are_summarized_without_errors_per_state(water):
    frames, records = water
    one = evaluate_structure(
        _orthogonal(records[0]) + 0.01 * np.eye(24), records[0], frames[0], "fock_orthogonal", SETTINGS
    )
    fewer_states = Orbitals(one.predicted.energies[:20], one.predicted.coefficients[:, :20], 5)
    smaller = dataclasses.replace(one, predicted=fewer_states, reference=fewer_states)
    summary = summarize([one, smaller])
    assert "state_energy_mae_mev" not in summary
    assert summary["occupied_energy_mae_mev"] == pytest.approx(0.01 * 27211.386 / 2, rel=1e-5)
    with pytest.raises(ValueError, match="equal numbers of states"):
        per_state_mae([one, smaller])


def test_errors_by_size_groups_structures_by_atom_count():
    rng = np.random.default_rng(0)
    reference = [(lambda a: a + a.T)(rng.normal(size=(n, n))) for n in (4, 6, 4)]
    shifts = (1e-3, 0.0, 3e-3)
    predicted = [m + shift * np.eye(len(m)) for m, shift in zip(reference, shifts, strict=True)]
    by_size = errors_by_size(predicted, reference, [2, 3, 2], n_atoms=[5, 9, 5])
    assert list(by_size) == [5, 9]
    assert by_size[5]["n_structures"] == 2 and by_size[9]["n_structures"] == 1
    assert by_size[5]["occupied_energy_mae_mev"] == pytest.approx(2e-3 * 27211.386, rel=1e-6)
    assert by_size[9]["hamiltonian_mae_uha"] == 0.0
    with pytest.raises(ValueError, match="sizes"):
        errors_by_size(predicted, reference, [2, 3, 2], n_atoms=[5, 9])


def test_occupied_similarity_sees_mixing_not_rotation(water):
    _, (record, _) = water
    reference = orbitals_from_orthogonal(_orthogonal(record), record.overlap, record.n_occupied)
    angle = 0.3
    rotated = reference.coefficients.copy()
    i, j = 1, 3  # two occupied orbitals
    rotated[:, [i, j]] = reference.coefficients[:, [i, j]] @ np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    subspace, per_orbital = occupied_similarity(
        type(reference)(reference.energies, rotated, 5), reference, record.overlap
    )
    assert subspace == pytest.approx(1.0, abs=1e-10) and per_orbital[i] == pytest.approx(np.cos(angle))
    mixed = reference.coefficients.copy()
    mixed[:, [4, 5]] = reference.coefficients[:, [5, 4]]  # HOMO swapped with LUMO
    subspace, _ = occupied_similarity(type(reference)(reference.energies, mixed, 5), reference, record.overlap)
    assert subspace == pytest.approx(0.8, abs=1e-10)


def test_intruder_state_is_flagged(water):
    frames, records = water
    matrix = _orthogonal(records[1])
    values, vectors = np.linalg.eigh(matrix)
    values[-1] = 50.0  # one state far above every reference orbital energy
    intruder = (vectors * values) @ vectors.T
    evaluations = [
        evaluate_structure(_orthogonal(records[0]), records[0], frames[0], "fock_orthogonal", SETTINGS),
        evaluate_structure(intruder, records[1], frames[1], "fock_orthogonal", SETTINGS),
    ]
    summary = summarize(evaluations)
    assert summary["spurious_structures"] == [1] and summary["n_spurious_states"] == 1
    assert evaluations[1].spurious.tolist() == [23]


def test_block_errors_land_in_their_block_family(water):
    frames, records = water
    reference = [_orthogonal(r) for r in records]
    predicted = [m.copy() for m in reference]
    predicted[0][0, 0] += 1e-3  # first AO of atom 0 (oxygen): an on-site element
    errors = block_type_errors(
        predicted, reference, AtomicBasis.from_pyscf("def2-svp", [1, 8]), [a.numbers for a in frames]
    )
    assert errors["on_site_mae_uha"] > 0
    assert errors["different_element_mae_uha"] == errors["same_element_plus_mae_uha"] == 0


def test_onsite_shifts_are_told_apart_from_the_shape_of_the_onsite_error(water):
    frames, records = water
    basis, numbers = AtomicBasis.from_pyscf("def2-svp", [1, 8]), [a.numbers for a in frames]
    reference = [_orthogonal(r) for r in records]
    offsets = basis.atom_offsets(numbers[0])
    atom_of_ao = np.repeat(np.arange(3), np.diff(offsets))
    shifts = np.array([2e-3, -1e-3, 4e-3])  # O, H, H
    shifted = [m + np.diag(shifts[atom_of_ao]) for m in reference]
    errors = onsite_shift_errors(shifted, reference, basis, numbers)
    assert errors["onsite_after_atom_shift_mae_uha"] < 1e-9
    assert errors["atom_shift_mae_uha"] == pytest.approx(1e6 * np.abs(shifts).mean())
    uniform = onsite_shift_errors([m + 3e-3 * np.eye(len(m)) for m in reference], reference, basis, numbers)
    assert uniform["onsite_after_molecule_shift_mae_uha"] < 1e-9 and uniform["molecule_shift_mae_uha"] == pytest.approx(
        3e3
    )
    rng = np.random.default_rng(0)
    noise = [(lambda e: m + 1e-3 * (e + e.T))(rng.normal(size=m.shape)) for m in reference]
    shape = onsite_shift_errors(noise, reference, basis, numbers)
    assert shape["onsite_after_atom_shift_mae_uha"] > 0.5 * shape["onsite_mae_uha"] > 100
    rotation = random_rotation(torch.Generator().manual_seed(5), improper=True)
    wigner = basis_wigner(basis, numbers[0], rotation).numpy()
    turned = onsite_shift_errors(
        [wigner @ m @ wigner.T for m in noise], [wigner @ m @ wigner.T for m in reference], basis, numbers
    )
    assert turned["atom_shift_mae_uha"] == pytest.approx(shape["atom_shift_mae_uha"], rel=1e-9)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return water_fock_run(tmp_path_factory)


def test_split_frames_are_the_frames_of_the_configs_split():
    cfg = compose_config(["+experiment=water", "split.train=[3,7]", "split.test=[10,12]"])
    everything = read_frames(cfg.data.frames)
    for name, (first, end) in (("train", (3, 7)), ("test", (10, 12))):
        frames = split_frames(cfg, name)
        assert all(np.array_equal(a.positions, b.positions) for a, b in zip(frames, everything[first:end], strict=True))
    assert not np.array_equal(split_frames(cfg, "train")[0].positions, split_frames(cfg, "test")[0].positions)


def test_basis_mismatch_and_unknown_element_are_named(run_dir):
    model = HamiltonianModel.load(run_dir / "model.pt")
    with pytest.raises(ValueError, match="'def2-svp'.*'cc-pvdz'"):
        model.check_inputs(read_frames(WATER, ":1"), "cc-pvdz")
    with pytest.raises(ValueError, match=r"\['N'\]"):
        model.check_inputs([ase.Atoms("NH3", np.eye(4, 3))], "def2-svp")


def test_command_line_writes_metrics_and_plots(run_dir, tmp_path):
    metrics = evaluate_main([str(run_dir), "--output", str(tmp_path), "--n-workers", "1"])
    written = json.loads((tmp_path / "evaluation.json").read_text())
    assert written["n_structures"] == 2 and written["target"] == "fock_orthogonal"
    assert written["energy_mae_mev"] == pytest.approx(metrics["energy_mae_mev"])
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert written["energy_mae_mev"] == pytest.approx(trained["energy_mae_mev"], rel=1e-6)
    assert 0 < written["dipole_component_mae_debye"] < 0.5 and written["occupied_similarity_min"] > 0.99
    for name in ("orbital_energies.png", "frontier_levels.png", "dipole.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_module_entry_point_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["nhamil.evaluate", "--help"])
    monkeypatch.delitem(sys.modules, "nhamil.evaluate.__main__", raising=False)
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("nhamil.evaluate", run_name="__main__")
    assert exit_.value.code == 0 and "run_dir" in capsys.readouterr().out


def test_command_line_reads_the_baselines_training_left_in_the_cache(tmp_path_factory, monkeypatch):
    run_dir = tmp_path_factory.mktemp("water-sap-run")
    trained = train_water_run(run_dir, reference_cache(tmp_path_factory), "+experiment=water_fock", "baseline=sap")

    def no_build(*args, **kwargs):
        raise AssertionError("a baseline was built again")

    for module in ("nhamil.reference.baseline", "nhamil.reference.baseline_cache"):
        monkeypatch.setattr(f"{module}.baseline_fock", no_build)
    metrics = evaluate_main([str(run_dir), "--output", str(run_dir / "evaluation"), "--n-workers", "1"])
    assert metrics["energy_mae_mev"] == pytest.approx(trained["energy_mae_mev"], rel=1e-9)
