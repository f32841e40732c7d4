"""RPR, equivariant property models, the DCE trajectory builder and PySCF's dipole law."""

import warnings

import ase
import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.data import atomic_masses

from nhamil.features import DensitySettings
from nhamil.heads import KernelSettings, RidgeSettings
from nhamil.orbitals import irrep_wigner, random_rotation
from nhamil.properties import EquivariantPropertyModel, RotatePredictRotate, principal_frame
from nhamil.properties import data as dce
from nhamil.properties.compare import equivariance_error
from nhamil.properties.equivariant import spherical_to_tensor, tensor_to_spherical
from nhamil.properties.frames import align_to_reference
from nhamil.properties.rpr import HeadRegressor
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.reference.settings import ScfSettings
from nhamil.testing import Cartesian, assert_equivariant

pytestmark = pytest.mark.usefixtures("one_thread")

MASSES = atomic_masses[dce.dichloroethane().numbers]


def gauche_frames(count: int, seed: int = 0) -> np.ndarray:
    """(count, 8, 3) distorted gauche DCE geometries, Å (no symmetry: a well-defined frame)."""
    rng = np.random.default_rng(seed)
    return dce.dichloroethane(70.0).positions + 0.05 * rng.standard_normal((count, 8, 3))


def rotations(count: int, improper: bool = False) -> list[np.ndarray]:
    generator = torch.Generator().manual_seed(7)
    return [random_rotation(generator, improper=improper).numpy() for _ in range(count)]


def test_principal_frame_is_a_proper_rotation_with_documented_signs():
    positions = gauche_frames(1)[0]
    rotation, moments, degenerate = principal_frame(positions, MASSES)
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(moments) > 0) and not degenerate
    centred = positions - MASSES @ positions / MASSES.sum()
    assert np.all(MASSES @ (centred @ rotation[:2].T) ** 3 > 0)


def test_principal_frame_signs_are_deterministic_under_rotation():
    positions = gauche_frames(1)[0]
    rotation, moments, _ = principal_frame(positions, MASSES)
    for q in rotations(3):
        rotated, rotated_moments, _ = principal_frame(positions @ q.T, MASSES)
        assert np.allclose(rotated, rotation @ q.T, atol=1e-10)
        assert np.allclose(rotated_moments, moments, atol=1e-10)


def test_reference_signs_follow_the_atoms_through_a_c2_rotation():
    """Anti DCE is centrosymmetric: third moments vanish, but with labelled atoms the C2 image
    (axes 1 and 2 negated) is a different frame, and alignment to the reference picks ours."""
    anti = dce.dichloroethane().positions
    centred = anti - MASSES @ anti / MASSES.sum()
    rotation, _, _ = principal_frame(anti, MASSES)
    flipped = np.diag([-1.0, -1.0, 1.0]) @ rotation
    aligned = align_to_reference(flipped, centred, centred @ rotation.T, MASSES)
    assert np.allclose(aligned, rotation, atol=1e-12)


def test_degeneracy_flag_fires_for_a_symmetric_top():
    ammonia = molecule("NH3")
    assert principal_frame(ammonia.positions, ammonia.get_masses())[2]
    assert not principal_frame(gauche_frames(1)[0], MASSES)[2]


@pytest.mark.parametrize("shape", [(3,), (3, 3)])
@pytest.mark.parametrize(
    "regressor, signs", [("gaussian", "third_moment"), ("head", "third_moment"), ("gaussian", "reference")]
)
def test_rpr_predictions_rotate_with_the_molecule(shape, regressor, signs):
    train, test = gauche_frames(30), gauche_frames(5, seed=1)
    targets = np.random.default_rng(2).standard_normal((30, *shape))
    kwargs = {"regressor": HeadRegressor()} if regressor == "head" else {}
    fitted = RotatePredictRotate(masses=MASSES, reference=dce.dichloroethane().positions, signs=signs, **kwargs).fit(
        train, targets
    )
    assert np.abs(fitted.predict(test)).max() > 1e-3
    assert_equivariant(
        fitted.predict, test, law=Cartesian(len(shape)), kinds=("rotation", "translation"), n_trials=2, seed=7
    )


@pytest.mark.parametrize(
    "shape, head",
    [((3,), RidgeSettings()), ((3,), KernelSettings()), ((3, 3), RidgeSettings()), ((3, 3), KernelSettings())],
)
def test_equivariant_models_are_equivariant_for_proper_and_improper_rotations(shape, head):
    frames = [ase.Atoms(dce.dichloroethane().numbers, p) for p in gauche_frames(8)]
    targets = np.random.default_rng(3).standard_normal((8, *shape))
    if len(shape) == 2:
        targets = targets + targets.transpose(0, 2, 1)
    model = EquivariantPropertyModel(
        species=(1, 6, 17), head=head, density=DensitySettings(cutoff=4.0, max_radial=2, max_angular=2)
    )
    fitted = model.fit(frames[:6], targets[:6])
    assert np.abs(fitted.predict(frames[6:])).max() > 1e-3
    assert_equivariant(fitted.predict, frames[6:], law=Cartesian(len(shape)), seed=7)


def test_equivariance_error_separates_equivariant_from_lab_frame_models():
    positions = gauche_frames(4)
    assert equivariance_error(lambda p: p[:, 0] - p.mean(axis=1), positions, 2, 0) < 1e-12
    assert equivariance_error(lambda p: np.tile([1.0, 0.0, 0.0], (len(p), 1)), positions, 2, 0) > 0.1


def test_polarizability_decomposition_round_trips_and_transforms_as_irreps():
    tensors = np.random.default_rng(4).standard_normal((3, 3, 3))
    tensors = tensors + tensors.transpose(0, 2, 1)
    parts = tensor_to_spherical(tensors)
    assert torch.allclose(parts[1], torch.zeros_like(parts[1]), atol=1e-14)
    assert parts[0][:, 0].numpy() == pytest.approx(np.trace(tensors, axis1=1, axis2=2) / 3**0.5, abs=1e-13)
    assert np.allclose(spherical_to_tensor({0: parts[0], 2: parts[2]}), tensors, atol=1e-13)
    for q in rotations(1) + rotations(1, improper=True):
        rotated = tensor_to_spherical(q @ tensors @ q.T)
        assert torch.allclose(rotated[2], parts[2] @ irrep_wigner(2, 1, torch.as_tensor(q)).T, atol=1e-12)
        assert torch.allclose(rotated[0], parts[0], atol=1e-12)


@pytest.fixture(scope="module")
def tiny_settings():
    return dce.TrajectorySettings(chunk_size=2, temperature_K=300.0, scf=ScfSettings(basis="sto-3g", conv_tol=1e-8))


def test_trajectory_is_cached_resumed_and_reproducible(tmp_path, tiny_settings, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = dce.build_trajectory(tiny_settings, 2, tmp_path / "a", progress=False)
        resumed = dce.build_trajectory(tiny_settings, 4, tmp_path / "a", progress=False)
        fresh = dce.build_trajectory(tiny_settings, 4, tmp_path / "b", progress=False)
    assert resumed.positions.shape == (4, 8, 3) and resumed.polarizabilities.shape == (4, 3, 3)
    assert np.array_equal(resumed.positions[:2], first.positions)
    assert np.array_equal(resumed.positions, fresh.positions) and np.array_equal(resumed.dipoles, fresh.dipoles)
    monkeypatch.setattr(dce, "_run_chunk", lambda *args: pytest.fail("recomputed a cached chunk"))
    assert np.array_equal(
        dce.build_trajectory(tiny_settings, 3, tmp_path / "a", progress=False).dipoles, resumed.dipoles[:3]
    )


def test_pyscf_dipole_and_polarizability_rotate_with_the_molecule():
    settings = ScfSettings(basis="sto-3g", conv_tol=1e-11)
    atoms = ase.Atoms(dce.dichloroethane().numbers, gauche_frames(1)[0])

    def dipoles_and_polarizabilities(frames):
        results = []
        for a in frames:
            solver = make_solver(build_molecule(a, settings), settings)
            solver.kernel()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results.append(dce.dipole_and_polarizability(solver))
        return np.stack([r[0] for r in results]), np.stack([r[1] for r in results])

    assert np.abs(dipoles_and_polarizabilities([atoms])[0]).max() > 0.1
    assert_equivariant(
        dipoles_and_polarizabilities,
        [atoms],
        law=(Cartesian(1), Cartesian(2)),
        kinds=("rotation", "combined"),
        seed=7,
        atol=1e-6,
    )


def test_chlorine_dihedral_tells_anti_from_gauche():
    geometries = np.stack([dce.dichloroethane(angle).positions for angle in (180.0, 70.0, -65.0)])
    assert np.abs(dce.chlorine_dihedral(geometries)) == pytest.approx([180.0, 70.0, 65.0], abs=1e-9)
