"""The field's metrics of Fock predictions (AO Fock MAE, occupied energies in µHa, QHNet's orbital
similarity psi) and the per-block-family errors of every run: exact cases, laws, symmetry."""

import json

import numpy as np
import pytest
import torch
from water_fock_run import WATER, reference_cache, water_fock_run

from nhamil.config import compose_config
from nhamil.evaluate import coefficient_cosines, fock_errors, orbitals_from_orthogonal, target_errors
from nhamil.orbitals import AtomicBasis, basis_wigner, random_rotation
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.reference.saph import overlap_power
from nhamil.targets import Target, TargetSet
from nhamil.units import HARTREE_TO_MEV, HARTREE_TO_MICROHARTREE

BASIS = AtomicBasis.from_pyscf("def2-svp", [1, 8])
FOCK_TARGETS = ("fock_orthogonal", "fock")


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    """Two water frames with their RHF/def2-SVP records (session-wide cache)."""
    frames = read_frames(WATER, ":2")
    records = build_reference_set(
        frames, ScfSettings(), ProjectionSettings(), reference_cache(tmp_path_factory), n_workers=1, progress=False
    )
    return frames, records


def _targets(name, records) -> TargetSet:
    return Target(name).make(records, BASIS)


def _numbers(frames):
    return [a.numbers for a in frames]


def test_every_full_fock_target_set_carries_its_ao_overlaps(water):
    frames, records = water
    for name in FOCK_TARGETS:
        targets = _targets(name, records)
        assert all(s is r.overlap for s, r in zip(targets.ao_overlaps, records, strict=True))
        assert targets.subset([1]).ao_overlaps[0] is records[1].overlap
    assert _targets("fock_orthogonal", records).overlaps is None
    assert Target("saph").make(records, BASIS).ao_overlaps is None


@pytest.mark.parametrize("name", FOCK_TARGETS)
def test_perfect_prediction_scores_zero_error_and_full_similarity(water, name):
    frames, records = water
    targets = _targets(name, records)
    errors = target_errors([m.copy() for m in targets.matrices], targets, _numbers(frames))
    assert errors["fock_ao_mae_uha"] < 1e-6 and errors["occupied_energy_mae_uha"] < 1e-6
    assert errors["on_site_mae_uha"] == errors["different_element_mae_uha"] == 0.0
    for key in ("orbital_similarity_pct", "orbital_overlap_similarity_pct", "occupied_subspace_similarity_pct"):
        assert errors[key] == pytest.approx(100.0, abs=1e-9)


def test_a_shifted_diagonal_element_is_its_share_of_the_ao_fock_mae(water):
    _, records = water
    record, delta = records[0], 2e-3
    n = len(record.fock)
    shifted = record.fock.copy()
    shifted[3, 3] += delta
    ao = fock_errors([shifted], [record.fock], [record.n_occupied], [record.overlap], orthogonal=False)
    assert ao["fock_ao_mae_uha"] == pytest.approx(delta / n**2 * HARTREE_TO_MICROHARTREE, rel=1e-12)
    # the same shift in the Löwdin basis is delta * s s^T in the AO basis, s = column 3 of S^1/2
    orthogonal = lowdin_orthogonalize(record.fock, record.overlap)
    shifted = orthogonal.copy()
    shifted[3, 3] += delta
    column = np.abs(overlap_power(record.overlap, 0.5)[:, 3]).sum()
    errors = fock_errors([shifted], [orthogonal], [record.n_occupied], [record.overlap], orthogonal=True)
    assert errors["fock_ao_mae_uha"] == pytest.approx(delta * column**2 / n**2 * HARTREE_TO_MICROHARTREE, rel=1e-8)


def test_occupied_energy_error_in_microhartree_is_the_mev_error_converted(water):
    frames, records = water
    targets = _targets("fock", records)
    shifted = [
        m + 1e-3 * s for m, s in zip(targets.matrices, targets.ao_overlaps, strict=True)
    ]  # every energy up by 1 mHa
    errors = target_errors(shifted, targets, _numbers(frames))
    assert errors["occupied_energy_mae_uha"] == pytest.approx(1e3, rel=1e-8)
    assert errors["occupied_energy_mae_mev"] == pytest.approx(1e-3 * HARTREE_TO_MEV, rel=1e-8)
    assert errors["orbital_similarity_pct"] == pytest.approx(100.0, abs=1e-9)


def _rotated_guess(record, i: int, j: int, angle: float) -> np.ndarray:
    """The Löwdin Fock matrix whose orbitals i and j are the reference's turned by ``angle``
    into each other, with the reference's energies."""
    energies, vectors = np.linalg.eigh(lowdin_orthogonalize(record.fock, record.overlap))
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    vectors[:, [i, j]] = vectors[:, [i, j]] @ turn
    return (vectors * energies) @ vectors.T


def test_homo_turned_into_lumo_lowers_psi_by_the_cosine(water):
    _, records = water
    record, angle = records[0], 0.2
    reference = lowdin_orthogonalize(record.fock, record.overlap)
    homo = record.n_occupied - 1
    guess = _rotated_guess(record, homo, homo + 1, angle)
    errors = fock_errors([guess], [reference], [record.n_occupied], [record.overlap], orthogonal=True)
    n = record.n_occupied
    assert errors["orbital_overlap_similarity_pct"] == pytest.approx(100 * (n - 1 + np.cos(angle)) / n, rel=1e-10)
    assert errors["occupied_subspace_similarity_pct"] == pytest.approx(
        100 * (n - 1 + np.cos(angle) ** 2) / n, rel=1e-10
    )
    assert 0 < errors["orbital_similarity_pct"] < 100 - 1e-3


def test_mixing_two_occupied_orbitals_lowers_psi_not_the_subspace(water):
    _, records = water
    record = records[0]
    reference = lowdin_orthogonalize(record.fock, record.overlap)
    guess = _rotated_guess(record, 1, 3, 0.3)
    errors = fock_errors([guess], [reference], [record.n_occupied], [record.overlap], orthogonal=True)
    assert errors["occupied_subspace_similarity_pct"] == pytest.approx(100.0, abs=1e-9)
    assert errors["orbital_similarity_pct"] < 100 - 1e-3 and errors["orbital_overlap_similarity_pct"] < 100 - 1e-3


def test_qhnet_psi_is_the_euclidean_cosine_of_coefficients(water):
    _, records = water
    record = records[0]
    reference = orbitals_from_orthogonal(lowdin_orthogonalize(record.fock, record.overlap), record.overlap, 5)
    scaled = type(reference)(reference.energies, -3.0 * reference.coefficients, 5)  # sign and norm do not count
    np.testing.assert_allclose(coefficient_cosines(scaled, reference), np.ones(5), atol=1e-12)
    swapped = reference.coefficients.copy()
    swapped[:, [0, 1]] = reference.coefficients[:, [1, 0]]
    expected = abs(reference.coefficients[:, 0] @ reference.coefficients[:, 1]) / (
        np.linalg.norm(reference.coefficients[:, 0]) * np.linalg.norm(reference.coefficients[:, 1])
    )
    cosines = coefficient_cosines(type(reference)(reference.energies, swapped, 5), reference)
    assert cosines[0] == pytest.approx(expected, rel=1e-12) and cosines[2:].tolist() == pytest.approx([1.0] * 3)


def _atom_permutation_of_aos(numbers, order) -> np.ndarray:
    """AO indices that reorder a structure's matrices as its atoms are reordered by ``order``."""
    offsets = BASIS.atom_offsets(numbers)
    return np.concatenate([np.arange(offsets[a], offsets[a + 1]) for a in order])


def _moved_errors(frames, targets, predicted, rotation, order) -> dict:
    """target_errors after turning every structure by ``rotation`` and reordering its atoms."""
    moved = []
    for atoms in frames:
        wigner = basis_wigner(BASIS, atoms.numbers, rotation).numpy()
        index = _atom_permutation_of_aos(atoms.numbers, order)
        moved.append(lambda m, w=wigner, i=index: (w @ m @ w.T)[np.ix_(i, i)])
    moved_targets = TargetSet(
        targets.name,
        BASIS,
        [f(m) for f, m in zip(moved, targets.matrices, strict=True)],
        targets.n_occupied,
        None if targets.overlaps is None else [f(s) for f, s in zip(moved, targets.overlaps, strict=True)],
        [f(s) for f, s in zip(moved, targets.ao_overlaps, strict=True)],
    )
    return target_errors(
        [f(p) for f, p in zip(moved, predicted, strict=True)], moved_targets, [a.numbers[order] for a in frames]
    )


def _noisy(targets) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [m + 1e-3 * (lambda a: a + a.T)(rng.normal(size=m.shape)) for m in targets.matrices]


@pytest.mark.parametrize("name", FOCK_TARGETS)
def test_every_metric_is_invariant_under_atom_permutation(water, name):
    frames, records = water
    targets = _targets(name, records)
    predicted = _noisy(targets)
    errors = target_errors(predicted, targets, _numbers(frames))
    assert errors["fock_ao_mae_uha"] > 1.0 and errors["orbital_similarity_pct"] < 100 - 1e-6
    moved = _moved_errors(frames, targets, predicted, torch.eye(3, dtype=torch.float64), [1, 0, 2])  # O H H -> H O H
    assert moved == pytest.approx(errors, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", FOCK_TARGETS)
@pytest.mark.parametrize("improper", [False, True])
def test_all_but_elementwise_maes_are_invariant_under_rotation(water, name, improper):
    """Energies, similarities and RMSEs (Frobenius norms) do not see a rotation; an MAE of matrix
    elements (an entrywise L1 norm) does, slightly, as for every model in the field."""
    frames, records = water
    targets = _targets(name, records)
    predicted = _noisy(targets)
    errors = target_errors(predicted, targets, _numbers(frames))
    moved = _moved_errors(
        frames, targets, predicted, random_rotation(torch.Generator().manual_seed(7), improper), [1, 0, 2]
    )
    invariant = {k for k in errors if not k.endswith("_mae_uha") or k == "occupied_energy_mae_uha"}
    assert {k: moved[k] for k in invariant} == pytest.approx({k: errors[k] for k in invariant}, rel=1e-8, abs=1e-9)
    assert moved["fock_ao_mae_uha"] == pytest.approx(errors["fock_ao_mae_uha"], rel=0.05)
    assert moved["hamiltonian_mae_uha"] != pytest.approx(errors["hamiltonian_mae_uha"], rel=1e-6)


def test_saph_metrics_have_block_families_but_no_ao_fock(water):
    frames, records = water
    targets = Target("saph").make(records, BASIS)
    predicted = [m + 1e-3 * np.eye(len(m)) for m in targets.matrices]
    errors = target_errors(predicted, targets, _numbers(frames))
    assert "fock_ao_mae_uha" not in errors and "orbital_similarity_pct" not in errors
    assert errors["on_site_mae_uha"] > 0 and errors["different_element_mae_uha"] == 0.0
    assert errors["occupied_energy_mae_uha"] == pytest.approx(1e3, rel=1e-8)


def test_full_fock_targets_without_ao_overlaps_are_refused(water):
    frames, records = water
    targets = _targets("fock_orthogonal", records)
    bare = TargetSet(targets.name, targets.basis, targets.matrices, targets.n_occupied)
    with pytest.raises(ValueError, match="AO overlaps"):
        target_errors(targets.matrices, bare, _numbers(frames))


def test_training_run_writes_the_fields_metrics(tmp_path_factory):
    metrics = json.loads((water_fock_run(tmp_path_factory) / "metrics.json").read_text())
    for key in (
        "fock_ao_mae_uha",
        "fock_ao_rmse_uha",
        "occupied_energy_mae_uha",
        "on_site_mae_uha",
        "same_element_plus_mae_uha",
        "same_element_minus_mae_uha",
        "different_element_mae_uha",
    ):
        assert metrics[key] > 0, key
    assert 90 < metrics["orbital_similarity_pct"] <= 100
    assert metrics["occupied_energy_mae_uha"] == pytest.approx(
        metrics["occupied_energy_mae_mev"] / HARTREE_TO_MEV * HARTREE_TO_MICROHARTREE, rel=1e-10
    )


@pytest.mark.parametrize(
    "experiment, target, train", [("ethanol_md17", "fock", [0, 800]), ("water_fock_pbe", "fock_orthogonal", [0, 500])]
)
def test_md17_level_experiments_compose_at_pbe(experiment, target, train):
    cfg = compose_config([f"+experiment={experiment}"])
    assert (cfg.reference.method, cfg.reference.xc, cfg.reference.basis) == ("rks", "pbe", "def2-svp")
    assert cfg.target == target and list(cfg.split.train) == train and list(cfg.split.test) == [800, 1000]
