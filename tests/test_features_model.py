"""The Hamiltonian model with the higher-order feature families: symmetry, checkpoints, defaults."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_model import assert_gpu_prediction_matches_cpu

from nhamil.blocks.keys import ON_SITE, PairKind
from nhamil.features import DensitySettings
from nhamil.features.ncenter import NCenterFeaturizer
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.structures import Structures
from nhamil.testing import assert_equivariant

pytestmark = pytest.mark.usefixtures("one_thread")

EVERYTHING = FeatureSettings(
    density=DensitySettings(max_radial=3, max_angular=2),
    onsite_correlation_order=3,
    message_passing=True,
    pair_correlation_order=2,
    both_centres=True,
    contraction_channels=12,
)


@pytest.fixture(scope="module")
def water_model(water_saph_data):
    """A water SAPH model with every feature family switched on."""
    frames, matrices, basis = water_saph_data
    model = HamiltonianModel(basis, [1, 8], target="saph", features=EVERYTHING)
    return model.fit(frames[:10], matrices[:10], progress=False), frames


def test_every_family_keeps_the_prediction_equivariant(water_model):
    model, frames = water_model
    assert set(model.featurizer.contractions) == {2, 3}
    atoms = frames[-1]
    assert model.predict([atoms])[0].abs().max() > 1e-3
    assert_equivariant(model, [atoms], seed=21)


def test_checkpoint_keeps_settings_and_contractions(water_model, tmp_path):
    model, frames = water_model
    model.save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    assert restored.features == EVERYTHING
    for a, b in zip(model.predict(frames[-2:]), restored.predict(frames[-2:]), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_settings_of_older_checkpoints_read_as_the_defaults():
    old = {
        "density": {
            "cutoff": 4.0,
            "max_radial": 8,
            "max_angular": 6,
            "gaussian_width": 0.3,
            "cutoff_width": 0.5,
            "center_weight": 1.0,
        },
        "onsite_correlation_order": 2,
    }
    assert FeatureSettings.from_dict(old) == FeatureSettings()
    assert FeatureSettings.from_dict(FeatureSettings().to_dict()) == FeatureSettings()


def test_contractions_of_older_checkpoints_still_reach_the_onsite_features():
    old = {"density": DensitySettings().__dict__, "pair_correlation_order": 2, "contraction_channels": 64}
    assert FeatureSettings.from_dict(old).contract_onsite_nu2
    assert not FeatureSettings.from_dict({**old, "contraction_channels": None}).contract_onsite_nu2


def test_onsite_nu2_features_stay_whole_when_only_the_pair_features_need_contracting(water_saph_data):
    """Contracting the nu = 2 on-site features the heads see lost accuracy (ethanol's on-site
    error 258 -> 590 µHa): with four-body pairs, only their centre densities are contracted."""
    frames, _, _ = water_saph_data
    structures = Structures.from_atoms(frames[:4])
    oxygen = PairKind(ON_SITE, 8, 8)
    settings = FeatureSettings(
        density=DensitySettings(max_radial=3, max_angular=2), pair_correlation_order=2, contraction_channels=4
    )

    def onsite(features: FeatureSettings) -> dict:
        featurizer = NCenterFeaturizer(features, [1, 8], 2).fit(structures)
        return featurizer.compute(structures, {oxygen: np.array([[s, 0, 0] for s in range(4)])})[oxygen].blocks

    whole, kept = onsite(replace(settings, contraction_channels=None)), onsite(settings)
    squeezed = onsite(replace(settings, contract_onsite_nu2=True))
    assert kept.keys() == whole.keys() and all(torch.equal(kept[k], whole[k]) for k in whole)
    assert sum(b.shape[-1] for b in squeezed.values()) < sum(b.shape[-1] for b in whole.values())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_prediction_with_contractions_matches_cpu(water_model):
    """Contractions, heads and maps moved to the GPU give the CPU's prediction to round-off."""
    model, frames = water_model
    assert_gpu_prediction_matches_cpu(model, frames[10:12])
