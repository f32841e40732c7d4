"""The compiled prediction path: the same matrices as HamiltonianModel.predict, the same symmetry."""

import ase
import ase.build
import numpy as np
import pytest
import torch

from nhamil.errors import InputError
from nhamil.features import DensitySettings
from nhamil.heads import KernelSettings
from nhamil.inference import Predictor
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.testing import AOMatrices, assert_equivariant

SMALL = FeatureSettings(density=DensitySettings(max_radial=3, max_angular=3))


def _ethanol_model(head=None, target="fock_orthogonal", baseline=None, n_frames=4):
    """A def2-SVP (s, p, d) ethanol model on random symmetric targets: C-C and H-H pairs have +
    and - blocks, C-H, C-O and H-O different-element ones."""
    atoms = ase.build.molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    frames = [ase.Atoms(atoms.numbers, atoms.positions + rng.normal(scale=0.1, size=(9, 3))) for _ in range(n_frames)]
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)
    n_ao = basis.n_ao(atoms.numbers)
    targets = [torch.as_tensor(a + a.T) for a in rng.normal(size=(n_frames, n_ao, n_ao))]
    model = HamiltonianModel(basis, [1, 6, 8], target=target, features=SMALL, head=head, baseline=baseline)
    return model.fit(frames, targets, progress=False), frames


@pytest.fixture(scope="module")
def ridge():
    return _ethanol_model()


def _moved(frames, seed=1):
    rng = np.random.default_rng(seed)
    return [ase.Atoms(a.numbers, a.positions + rng.normal(scale=0.05, size=(9, 3))) for a in frames]


def test_equals_the_model_in_float64_one_and_several_geometries(ridge):
    model, frames = ridge
    frames = _moved(frames)
    predictor = Predictor(model, frames[0].numbers)
    assert predictor.linear
    expected = model.predict(frames, check_domain=False)
    for atoms, matrix in zip(frames, expected, strict=True):
        torch.testing.assert_close(predictor.predict(atoms.positions), matrix, atol=1e-10, rtol=0)
    batch = predictor.predict(np.stack([a.positions for a in frames]))
    torch.testing.assert_close(batch, torch.stack(expected), atol=1e-10, rtol=0)


def test_float32_keeps_1e_5_of_the_float64_matrix(ridge):
    model, frames = ridge
    positions = _moved(frames)[0].positions
    exact = Predictor(model, frames[0].numbers).predict(positions)
    single = Predictor(model, frames[0].numbers, dtype=torch.float32).predict(positions)
    assert single.dtype == torch.float32
    assert (single.double() - exact).abs().max() < 1e-5 * max(1.0, float(exact.abs().max()))


def test_follows_rotation_inversion_and_permutation(ridge):
    """F(P R x + t) = P_ao D F(x) D^T P_ao^T with a Predictor per order of the atoms."""
    model, frames = ridge
    predictors = {}

    def predict(moved):
        out = []
        for atoms in moved:
            key = tuple(atoms.numbers.tolist())
            predictors.setdefault(key, Predictor(model, key))
            out.append(predictors[key].predict(atoms.positions))
        return out

    assert_equivariant(predict, [frames[-1]], law=AOMatrices(model.basis), seed=3, atol=1e-10)
    assert len(predictors) > 1  # permutations did reorder the atoms


def test_kernel_heads_take_the_model_path():
    model, frames = _ethanol_model(KernelSettings(n_active=6))
    predictor = Predictor(model, frames[0].numbers)
    assert not predictor.linear
    atoms = _moved(frames)[1]
    torch.testing.assert_close(
        predictor.predict(atoms.positions), model.predict([atoms], check_domain=False)[0], atol=1e-10, rtol=0
    )


def test_sap_baseline_is_added_as_the_model_adds_it():
    model, frames = _ethanol_model(target="fock", baseline="sap", n_frames=3)
    atoms = _moved(frames)[0]
    predictor = Predictor(model, atoms.numbers)
    full, learned = predictor.predict(atoms.positions), predictor.predict(atoms.positions, baseline=False)
    torch.testing.assert_close(full, model.predict([atoms], check_domain=False)[0], atol=1e-10, rtol=0)
    assert (full - learned).abs().max() > 1.0  # the baseline holds the nuclear attraction


def test_bad_input_is_refused_in_one_line(ridge):
    model, frames = ridge
    predictor = Predictor(model, frames[0].numbers)
    with pytest.raises(InputError, match=r"n_atoms = 9"):
        predictor.predict(frames[0].positions[:8])
    crowded = frames[0].positions.copy()
    crowded[1] = crowded[0]
    with pytest.raises(InputError, match="closer than"):
        predictor.predict(crowded)
    with pytest.raises(InputError, match="not trained"):
        Predictor(model, [7, 1, 1, 1])
    with pytest.raises(InputError, match="not fitted"):
        Predictor(HamiltonianModel(model.basis, [1, 6, 8], target="fock_orthogonal"), frames[0].numbers)


@pytest.mark.parametrize("message_passing", [True, False])
def test_other_feature_families_take_the_featurizer_path_and_agree(message_passing):
    """Order-2 pair features (contracted) and the on-site features, with message passing or
    without (the on-site nu = 2 then uncontracted), go through the featurizer's own functions,
    with the folded weights."""
    features = FeatureSettings(
        density=DensitySettings(max_radial=2, max_angular=2),
        pair_correlation_order=2,
        contraction_channels=6,
        message_passing=message_passing,
    )
    atoms = ase.build.molecule("H2O")
    rng = np.random.default_rng(2)
    frames = [ase.Atoms(atoms.numbers, atoms.positions + rng.normal(scale=0.1, size=(3, 3))) for _ in range(4)]
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)
    n_ao = basis.n_ao(atoms.numbers)
    targets = [torch.as_tensor(a + a.T) for a in rng.normal(size=(4, n_ao, n_ao))]
    model = HamiltonianModel(basis, [1, 8], target="fock_orthogonal", features=features)
    model.fit(frames, targets, progress=False)
    predictor = Predictor(model, atoms.numbers)
    assert predictor.linear and predictor._plan is None
    moved = ase.Atoms(atoms.numbers, frames[0].positions + rng.normal(scale=0.03, size=(3, 3)))
    torch.testing.assert_close(
        predictor.predict(moved.positions), model.predict([moved], check_domain=False)[0], atol=1e-10, rtol=0
    )


def test_models_with_a_pair_cutoff_are_refused_by_name(ridge):
    """A Predictor fixes a composition's atom pairs; a pair cutoff makes them depend on the
    geometry, so such a model is refused (by its cutoff) rather than predicted wrongly."""
    model, frames = ridge
    cut = HamiltonianModel.from_state_dict({**model.state_dict(), "pair_cutoff": 3.0})
    with pytest.raises(InputError, match="pair_cutoff=3.0"):
        Predictor(cut, frames[0].numbers)
