"""The trained model never breaks a symmetry: rotations, inversion, atom permutations."""

import copy

import ase
import ase.build
import numpy as np
import pytest
import torch
from paper_data import paper_saph

from nhamil import model as model_module
from nhamil.features import DensitySettings, ncenter
from nhamil.heads import KernelSettings
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.testing import INVARIANT, AOMatrices, assert_equivariant

SMALL = FeatureSettings(density=DensitySettings(max_radial=4, max_angular=4))


@pytest.fixture(scope="module")
def water_saph_model(water_saph_data):
    frames, matrices, basis = water_saph_data
    return HamiltonianModel(basis, [1, 8], target="saph", features=SMALL).fit(frames[:10], matrices[:10]), frames


@pytest.fixture(scope="module")
def water_kernel_model(water_saph_data):
    """The same data with sparse lambda-SOAP kernel heads."""
    frames, matrices, basis = water_saph_data
    model = HamiltonianModel(basis, [1, 8], target="saph", features=SMALL, head=KernelSettings(n_active=6))
    return model.fit(frames[:10], matrices[:10]), frames


def _random_ethanol_model(head=None, onsite_head=None):
    """A def2-SVP (s, p, d) model on random symmetric targets: symmetry must hold for any weights.
    Its same-element pairs (C-C, H-H with p shells) have - blocks, which flip sign when the two
    atoms swap."""
    atoms = ase.build.molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    frames = [ase.Atoms(atoms.numbers, atoms.positions + rng.normal(scale=0.1, size=(9, 3))) for _ in range(4)]
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)
    targets = [
        torch.as_tensor(a + a.T) for a in rng.normal(size=(4, basis.n_ao(atoms.numbers), basis.n_ao(atoms.numbers)))
    ]
    model = HamiltonianModel(
        basis, [1, 6, 8], target="fock_orthogonal", features=SMALL, head=head, onsite_head=onsite_head
    )
    return model.fit(frames, targets, progress=False), frames


@pytest.fixture(scope="module")
def ethanol_model():
    return _random_ethanol_model()


@pytest.fixture(scope="module")
def ethanol_kernel_model():
    return _random_ethanol_model(KernelSettings(n_active=8))


@pytest.fixture(scope="module")
def ethanol_mixed_model():
    """Sparse kernel heads on-site, ridge heads for the pairs (``onsite_head``)."""
    return _random_ethanol_model(onsite_head=KernelSettings(n_active=8))


SYMMETRY_FIXTURES = ["water_saph_model", "water_kernel_model", "ethanol_model", "ethanol_kernel_model"]


@pytest.mark.parametrize("fixture", [*SYMMETRY_FIXTURES, "ethanol_mixed_model"])
def test_prediction_follows_rotation_inversion_and_permutation(fixture, request):
    """F(P R x + t) = P_ao D F(x) D^T P_ao^T, and the same orbital energies, to 1e-10 Ha."""
    model, frames = request.getfixturevalue(fixture)
    predictions = []

    def matrices_and_energies(frames):
        predictions.append(model.predict(frames))
        return predictions[-1], [torch.linalg.eigvalsh(m) for m in predictions[-1]]

    assert_equivariant(
        matrices_and_energies, [frames[-1]], law=(AOMatrices(model.basis), INVARIANT), seed=11, atol=1e-10
    )
    assert predictions[0][0].abs().max() > 1e-3


def test_water_saph_is_learned(water_saph_model):
    model, frames = water_saph_model
    reference = paper_saph("water", range(10, 12))
    predicted = np.stack([p.numpy() for p in model.predict(frames[10:12])])
    assert np.abs(predicted - reference).max() < 0.1 * np.abs(reference).max()


@pytest.mark.parametrize("fixture", ["water_saph_model", "water_kernel_model", "ethanol_mixed_model"])
def test_checkpoint_round_trip(fixture, tmp_path, request):
    model, frames = request.getfixturevalue(fixture)
    model.save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    for a, b in zip(model.predict(frames[-2:]), restored.predict(frames[-2:]), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_features_built_in_frame_chunks_equal_one_pass(water_saph_data, monkeypatch):
    """Features built a few frames at a time fill the same rows as one pass over all frames.
    Compared before any fit: the lightly regularized ridge solve would amplify their round-off."""
    frames, _, basis = water_saph_data
    model = HamiltonianModel(basis, [1, 8], target="saph", features=SMALL)
    groups = model_module._feature_groups(model._layout(frames[:7]).pairs())

    def features():
        return [model.featurizer.compute_in_chunks(frames[:7], group, "cpu") for group in groups]

    whole = features()
    monkeypatch.setattr(ncenter, "CHUNK", 3)
    for one_pass, chunked in zip(whole, features(), strict=True):
        assert set(chunked) == set(one_pass)
        for kind, expected in one_pass.items():
            torch.testing.assert_close(chunked[kind].samples, expected.samples, atol=0, rtol=0)
            assert set(chunked[kind].blocks) == set(expected.blocks)
            for key, block in expected.blocks.items():
                torch.testing.assert_close(chunked[kind].blocks[key], block, atol=1e-14, rtol=0)


def test_unknown_element_is_named_before_any_work(water_saph_model):
    model, _ = water_saph_model
    with pytest.raises(ValueError, match=r"Z=\[7\]"):
        model.predict([ase.build.molecule("NH3")])


def test_unseen_atom_pair_is_named_before_any_work(water_saph_model):
    """Water has no O-O pair: hydrogen peroxide's known elements do not make it predictable."""
    model, _ = water_saph_model
    with pytest.raises(ValueError, match=r"structure 1 \(H2O2\) has atom pairs the model was not trained on: O-O$"):
        model.predict([ase.build.molecule("H2O"), ase.build.molecule("H2O2")])


def test_corrupt_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="model.pt"):
        HamiltonianModel.load(path)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("fixture", ["water_saph_model", "ethanol_model", "ethanol_kernel_model"])
def test_cuda_prediction_matches_cpu(fixture, request):
    """A model moved to the GPU predicts there, from weights kept there, what it predicts on the
    CPU, to round-off: the CPU equivariance tests carry over."""
    model, frames = request.getfixturevalue(fixture)
    assert_gpu_prediction_matches_cpu(model, frames[:3])


def assert_gpu_prediction_matches_cpu(model: HamiltonianModel, frames: list[ase.Atoms]) -> None:
    """A copy of ``model`` moved to the GPU predicts ``frames`` there as ``model`` does on the CPU."""
    on_gpu = copy.deepcopy(model).to("cuda").predict(frames, device="cuda")
    for expected, predicted in zip(model.predict(frames), on_gpu, strict=True):
        assert predicted.device.type == "cuda"
        torch.testing.assert_close(predicted.cpu(), expected, atol=1e-10, rtol=0)
