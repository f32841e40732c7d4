"""One entry point for every head kind: fit, predict and (de)serialize by settings type."""

from __future__ import annotations

from dataclasses import asdict
from typing import Union

import torch

from .kernel import KernelFit, KernelSettings, fit_kernel_ridge
from .minibatch import MinibatchSettings, fit_minibatch
from .ridge import RidgeFit, RidgeSettings, fit_ridge

HeadSettings = Union[RidgeSettings, KernelSettings, MinibatchSettings]
HeadFit = Union[RidgeFit, KernelFit]
_SETTINGS = {"ridge": RidgeSettings, "kernel": KernelSettings, "minibatch": MinibatchSettings}


def fit_head(settings: HeadSettings, features: torch.Tensor, invariants: torch.Tensor, targets: torch.Tensor,
             groups: torch.Tensor, *, intercept: bool) -> HeadFit:
    """Fit the head that ``settings`` names. features (n, 2 lambda + 1, q); invariants (n, 1, q0)
    the same samples' lambda = 0 features (used by kernels); targets (n, 2 lambda + 1, t);
    groups (n,) molecule of each sample."""
    if isinstance(settings, KernelSettings):
        return fit_kernel_ridge(features, invariants, targets, groups, intercept=intercept, settings=settings)
    if isinstance(settings, MinibatchSettings):
        return fit_minibatch(features, targets, intercept=intercept, settings=settings)
    return fit_ridge(features, targets, groups, intercept=intercept, settings=settings)


def predict_head(fit: HeadFit, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
    """(n, 2 lambda + 1, t) predictions, on the device of ``features``."""
    fit = fit.to(features.device)
    return fit.predict(features, invariants) if isinstance(fit, KernelFit) else fit.predict(features)


def settings_to_dict(settings: HeadSettings) -> dict:
    name = next(key for key, kind in _SETTINGS.items() if isinstance(settings, kind))
    return {"kind": name, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}}


def settings_from_dict(data: dict) -> HeadSettings:
    """Inverse of :func:`settings_to_dict`; ``ValueError`` naming an unknown head kind."""
    data = dict(data)
    kind = data.pop("kind", "ridge")
    if kind not in _SETTINGS:
        raise ValueError(f"unknown head kind {kind!r}; choose one of {sorted(_SETTINGS)}")
    return _SETTINGS[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def fit_state(fit: HeadFit) -> dict:
    return {"kind": "kernel" if isinstance(fit, KernelFit) else "linear", "state": fit.state()}


def fit_from_state(data: dict) -> HeadFit:
    return KernelFit.from_state(data["state"]) if data["kind"] == "kernel" else RidgeFit(**data["state"])
