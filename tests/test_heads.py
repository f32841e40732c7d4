"""Ridge heads: exact recovery, mu-shared weights, intercept rules, folds by molecule."""

import pytest
import torch

from nhamil.features import EquivariantFeatures
from nhamil.heads import (
    KernelSettings,
    MinibatchSettings,
    RidgeSettings,
    farthest_point_sampling,
    fit_kernel_ridge,
    fit_minibatch,
    fit_ridge,
    settings_from_dict,
    settings_to_dict,
)
from nhamil.heads.ridge import _Gram
from nhamil.testing import assert_equivariant


def _data(n, mu, q, t, seed=0, noise=0.0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, mu, q, dtype=torch.float64, generator=generator)
    weights = torch.randn(q, t, dtype=torch.float64, generator=generator)
    targets = features @ weights + noise * torch.randn(n, mu, t, dtype=torch.float64, generator=generator)
    return features, weights, targets


@pytest.mark.parametrize("n", [8, 200])  # dual (rows < features) and primal solves
def test_noise_free_targets_are_recovered(n):
    features, _, targets = _data(n, 5, 30, 3)
    fit = fit_ridge(features, targets, torch.arange(n), intercept=False, settings=RidgeSettings())
    torch.testing.assert_close(fit.predict(features), targets, atol=1e-7, rtol=0)


@pytest.mark.parametrize("n_rows", [12, 90])  # dual (rows < features) and primal Gram matrices
def test_validation_errors_equal_a_fit_on_the_training_rows_alone(n_rows):
    """Leaving rows out of the shared Gram matrix is the same as fitting without them."""
    x, _, y = _data(n_rows, 1, 30, 2, seed=3, noise=0.1)
    x, y = x[:, 0], y[:, 0]
    valid = torch.arange(n_rows) % 3 == 0
    alphas = torch.tensor([1e-6, 1e-2, 1.0], dtype=torch.float64)
    errors = _Gram(x, y).validation_errors(valid, alphas)
    train_x, train_y = x[~valid], y[~valid]
    shift = alphas * train_x.pow(2).sum() / x.shape[1]
    for k in range(len(alphas)):
        weights = torch.linalg.solve(
            train_x.T @ train_x + shift[k] * torch.eye(30, dtype=torch.float64), train_x.T @ train_y
        )
        expected = (y[valid] - x[valid] @ weights).pow(2).sum(dim=0)
        torch.testing.assert_close(errors[k], expected, rtol=1e-8, atol=1e-12)


def test_each_target_gets_its_own_alpha():
    features, weights, clean = _data(60, 3, 20, 1, seed=1)
    noisy = clean + 3.0 * torch.randn(clean.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    fit = fit_ridge(
        features, torch.cat([clean, noisy], dim=-1), torch.arange(60), intercept=False, settings=RidgeSettings()
    )
    assert fit.alphas[0] < fit.alphas[1]


def _samples(n: int) -> torch.Tensor:
    """(n, 3) rows (k, 0, 0): one sample per system."""
    return torch.stack([torch.arange(n), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)], dim=1)


def test_prediction_is_equivariant_for_lambda_2():
    features, _, targets = _data(40, 5, 12, 2, noise=0.1)
    fit = fit_ridge(features, targets, torch.arange(40) // 2, intercept=False, settings=RidgeSettings())

    def head(x):
        return EquivariantFeatures(x.samples, {(2, 1): fit.predict(x.blocks[2, 1])})

    assert_equivariant(head, EquivariantFeatures(_samples(40), {(2, 1): features}), seed=3, atol=1e-12)


def test_intercept_only_for_invariants():
    features, _, targets = _data(30, 1, 10, 1)
    fit = fit_ridge(features, targets + 7.0, torch.arange(30), intercept=True, settings=RidgeSettings())
    torch.testing.assert_close(fit.predict(features), targets + 7.0, atol=1e-6, rtol=0)
    features, _, targets = _data(30, 3, 10, 1)
    with pytest.raises(ValueError, match="lambda = 0"):
        fit_ridge(features, targets, torch.arange(30), intercept=True, settings=RidgeSettings())


def test_cross_validation_needs_two_molecules():
    features, _, targets = _data(6, 1, 4, 1)
    with pytest.raises(ValueError, match="two molecules"):
        fit_ridge(features, targets, torch.zeros(6, dtype=torch.long), intercept=False, settings=RidgeSettings())


def _with_invariants(n, mu, q, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, mu, q, dtype=torch.float64, generator=generator),
        torch.randn(n, 1, 6, dtype=torch.float64, generator=generator),
    )


@pytest.mark.parametrize("n_active", [None, 15])
def test_kernel_prediction_is_equivariant(n_active):
    features, invariants = _with_invariants(30, 5, 8)
    targets = torch.randn(30, 5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    fit = fit_kernel_ridge(
        features, invariants, targets, torch.arange(30), intercept=False, settings=KernelSettings(n_active=n_active)
    )
    assert fit.nystrom.active.shape[0] == (n_active or 30)

    def head(x):
        return EquivariantFeatures(x.samples, {(2, -1): fit.predict(x.blocks[2, -1], x.blocks[0, 1])})

    inputs = EquivariantFeatures(_samples(30), {(2, -1): features, (0, 1): invariants})
    assert_equivariant(head, inputs, seed=4, atol=1e-11)


def test_full_kernel_with_zeta_one_reproduces_linear_targets():
    features, invariants = _with_invariants(40, 3, 10, seed=2)
    weights = torch.randn(10, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    targets = features @ weights
    fit = fit_kernel_ridge(
        features, invariants, targets, torch.arange(40), intercept=False, settings=KernelSettings(zeta=1)
    )
    torch.testing.assert_close(fit.predict(features, invariants), targets, atol=1e-6, rtol=0)


def test_farthest_point_sampling_spreads_out():
    points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [0.0, 5.0], [5.1, 0.0]], dtype=torch.float64)
    assert farthest_point_sampling(points, 3).tolist() == [0, 4, 3]
    assert farthest_point_sampling(points, None).tolist() == [0, 1, 2, 3, 4]


def test_minibatch_head_learns_a_well_conditioned_problem():
    features, _, targets = _data(200, 3, 5, 2, seed=3)
    fit = fit_minibatch(
        features,
        targets,
        intercept=False,
        settings=MinibatchSettings(epochs=300, batch_size=32, learning_rate=1e-2, weight_decay=0.0),
    )
    assert (fit.predict(features) - targets).abs().max() < 1e-3 * targets.abs().max()


@pytest.mark.slow
def test_minibatch_head_reaches_ridge_on_correlated_features():
    """Strongly correlated features (a random mixing of channels spanning three decades of scale)
    leave plain gradient descent far from the optimum; the whitened fit gets where ridge does."""
    features, _, targets = _data(300, 3, 8, 2, seed=4)
    generator = torch.Generator().manual_seed(5)
    scales = torch.diag(torch.logspace(0, -3, 8, dtype=torch.float64))
    mixing = torch.randn(8, 8, generator=generator, dtype=torch.float64) @ scales
    correlated = features @ mixing
    groups = torch.arange(300) // 10
    ridge = fit_ridge(correlated, targets, groups, intercept=False, settings=RidgeSettings())
    minibatch = fit_minibatch(
        correlated, targets, intercept=False, settings=MinibatchSettings(epochs=300, batch_size=32, weight_decay=0.0)
    )
    ridge_error = (ridge.predict(correlated) - targets).pow(2).mean()
    minibatch_error = (minibatch.predict(correlated) - targets).pow(2).mean()
    assert minibatch_error < 1e-6 * targets.pow(2).mean() + 2 * ridge_error


@pytest.mark.parametrize("settings", [RidgeSettings(), KernelSettings(n_active=4), MinibatchSettings()])
def test_head_settings_round_trip(settings):
    assert settings_from_dict(settings_to_dict(settings)) == settings


def test_a_new_head_kind_is_one_class_and_one_registry_entry(monkeypatch):
    """A toy head (the mean target, a mu-shared constant times nothing but an intercept) registered
    by name is fitted, predicted, saved and restored through the same calls as the built-in ones,
    and a block it does not map is refused by name."""
    from dataclasses import dataclass

    from nhamil.errors import InputError
    from nhamil.heads import HEADS, HeadKind, fit_from_state, fit_head, fit_state, predict_head, settings_from_dict

    @dataclass(frozen=True, kw_only=True)
    class MeanSettings:
        seed: int = 0

    @dataclass(frozen=True)
    class MeanFit:
        mean: torch.Tensor

        def predict(self, features, invariants):
            return self.mean.expand(len(features), 1, -1)

        def to(self, device):
            return MeanFit(self.mean.to(device))

        def state(self):
            return {"mean": self.mean}

        @classmethod
        def from_state(cls, state):
            return cls(state["mean"])

    def fit_mean(features, invariants, targets, groups, *, intercept, settings):
        return MeanFit(targets.mean(dim=(0, 1)))

    monkeypatch.setitem(
        HEADS,
        "mean",
        HeadKind("mean", MeanSettings, fit_mean, MeanFit, maps=lambda equivariance: tuple(equivariance) == (0, 1)),
    )
    settings = settings_from_dict({"kind": "mean"})
    x, y = torch.randn(6, 1, 3, dtype=torch.float64), torch.randn(6, 1, 2, dtype=torch.float64)
    fit = fit_from_state(fit_state(fit_head(settings, x, x, y, torch.arange(6), intercept=True)))
    assert torch.equal(predict_head(fit, x, x)[0, 0], y.mean(dim=(0, 1)))
    with pytest.raises(InputError, match="cannot fit"):
        fit_head(settings, x, x, y, torch.arange(6), intercept=False, equivariance=(1, 1))
    with pytest.raises(InputError, match="unknown head kind 'mena'"):
        settings_from_dict({"kind": "mena"})
