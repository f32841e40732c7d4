"""Gated heads: exactly equivariant, start as the ridge solution, learn what a linear head cannot."""

import pytest
import torch

from nhamil.errors import InputError
from nhamil.features import DensitySettings
from nhamil.heads import (
    GatedHead,
    GatedSettings,
    RidgeSettings,
    fit_gated,
    fit_ridge,
    settings_from_dict,
)
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import irrep_wigner, random_rotation

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = FeatureSettings(density=DensitySettings(max_radial=4, max_angular=4))


def _random_head(gate: str, q=5, q0=4, t=3) -> GatedHead:
    """A head whose gate and weights are all random (not the zero gate it starts with)."""
    torch.manual_seed(3)
    head = GatedHead(q, q0, t, hidden=6, layers=2, gate=gate, intercept=False)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_()
    return head


@pytest.mark.parametrize("gate", ["channel", "weights"])
@pytest.mark.parametrize("improper", [False, True])
@pytest.mark.parametrize("lam, sigma", [(1, 1), (2, 1), (1, -1), (3, -1)])
def test_gated_head_follows_rotation_and_inversion(gate, improper, lam, sigma):
    """Y(D X, u) = D Y(X, u) for the block's Wigner matrix D (with sigma (-1)^lambda for inversion)."""
    head = _random_head(gate)
    generator = torch.Generator().manual_seed(5)
    features = torch.randn(7, 2 * lam + 1, 5, generator=generator, dtype=torch.float64)
    invariants = torch.randn(7, 1, 4, generator=generator, dtype=torch.float64)
    wigner = irrep_wigner(lam, sigma * (-1) ** lam, random_rotation(generator, improper=improper))
    moved = head.predict(torch.einsum("ab,nbq->naq", wigner, features), invariants)
    expected = torch.einsum("ab,nbt->nat", wigner, head.predict(features, invariants))
    assert torch.allclose(moved, expected, atol=1e-10, rtol=0)
    assert (head.predict(features, invariants) - head.predict(features, invariants + 1)).abs().max() > 1e-3


def test_gated_head_starts_as_the_ridge_solution():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(40, 1, 6, generator=generator, dtype=torch.float64)
    targets = features @ torch.randn(6, 2, generator=generator, dtype=torch.float64) + 0.3
    groups = torch.arange(40) // 2
    ridge = fit_ridge(features, targets, groups, intercept=True, settings=RidgeSettings())
    head = GatedHead.from_linear(ridge, features, hidden=8, layers=1, gate="channel", intercept=True)
    assert torch.allclose(head.predict(features, features), ridge.predict(features), atol=1e-12, rtol=0)


def test_gated_fit_learns_an_invariant_modulation_that_ridge_cannot():
    """Targets X W (1 + u^2): a linear head of X misses the factor, a gated one finds it."""
    generator = torch.Generator().manual_seed(1)
    n = 400
    features = torch.randn(n, 3, 4, generator=generator, dtype=torch.float64)
    invariants = torch.randn(n, 1, 2, generator=generator, dtype=torch.float64)
    weights = torch.randn(4, 2, generator=generator, dtype=torch.float64)
    targets = (features * (1 + invariants[..., :1] ** 2)) @ weights
    groups = torch.arange(n) // 4
    train, test = slice(0, 300), slice(300, n)
    settings = GatedSettings(learning_rate=1e-2, epochs=150, batch_size=8, patience=150)
    gated = fit_gated(
        features[train], invariants[train], targets[train], groups[train], intercept=False, settings=settings
    )
    ridge = fit_ridge(features[train], targets[train], groups[train], intercept=False, settings=RidgeSettings())
    gated_error = (gated.predict(features[test], invariants[test]) - targets[test]).pow(2).mean()
    ridge_error = (ridge.predict(features[test]) - targets[test]).pow(2).mean()
    assert gated_error < 0.2 * ridge_error


@pytest.mark.parametrize("bad", [{"gate": "sigmoid"}, {"validation_fraction": 1.0}, {"hidden": 0}, {"layers": -1}])
def test_bad_gated_settings_are_named(bad):
    name = next(iter(bad))
    with pytest.raises(InputError, match=f"head.{name}"):
        GatedSettings(**bad)


def test_gated_settings_come_from_the_config_dict():
    assert settings_from_dict({"kind": "gated", "hidden": 4, "alphas": [1e-3]}) == GatedSettings(
        hidden=4, alphas=(1e-3,)
    )


def test_gated_water_model_round_trips_its_checkpoint(water_saph_data, tmp_path):
    frames, matrices, basis = water_saph_data
    model = HamiltonianModel(
        basis, [1, 8], target="saph", features=SMALL, head=GatedSettings(epochs=3, learning_rate=1e-6, gate="weights")
    )
    model.fit(frames[:8], matrices[:8], progress=False)
    assert all(isinstance(fit, GatedHead) for _, fit in model.heads.values())
    model.save(tmp_path / "model.pt")
    restored = HamiltonianModel.load(tmp_path / "model.pt")
    for original, loaded in zip(model.predict(frames[8:10]), restored.predict(frames[8:10]), strict=True):
        assert torch.equal(original, loaded)
