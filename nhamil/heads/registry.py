"""The head protocol and the registry of head kinds, by name.

A head maps the (n, 2 lambda + 1, q) features of one (lambda, sigma) block of samples to
(n, 2 lambda + 1, t) targets with weights shared across mu, so that if the features transform as
X(R x) = D X(x) the predictions do too: Y(R x) = D Y(x) (D = the Wigner matrix of (lambda, sigma)).
Invariants (n, 1, q0), the samples' lambda = 0, sigma = +1 features, are passed to every head: a
head may use them nonlinearly (kernels, gates) without breaking the law.

A new head kind is one module that defines its settings (a frozen dataclass), its fit function
and its fitted class (the :class:`Head` protocol), plus one line in :data:`HEADS`. The config
schemas, fitting and checkpoints all go through :data:`HEADS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch

from ..errors import InputError
from .gated import GatedHead, GatedSettings, fit_gated
from .kernel import KernelFit, KernelSettings, fit_kernel_ridge
from .minibatch import MinibatchSettings, fit_minibatch
from .ridge import LinearFit, RidgeFit, RidgeSettings, fit_ridge


class Head(Protocol):
    """A fitted head: predictions, a device move and plain-data (de)serialization."""

    def predict(self, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        """(n, 2 lambda + 1, q), (n, 1, q0) -> (n, 2 lambda + 1, t), on the features' device."""

    def to(self, device: torch.device | str) -> Head: ...

    def state(self) -> dict: ...

    @classmethod
    def from_state(cls, state: dict) -> Head: ...


#: fit(features, invariants, targets, groups, *, intercept, settings) -> Head; groups (n,) is the
#: molecule of each sample (cross-validation never splits one); intercept only for invariant
#: on-site blocks.
FitFunction = Callable[..., Head]


@dataclass(frozen=True)
class HeadKind:
    """A registered head kind: its ``name`` (the config's ``head.kind``), its ``settings`` class,
    its ``fit`` function and the class it returns (``fitted``, which restores checkpoints).
    ``maps`` says which (lambda, sigma) blocks it can fit (every one, for the built-in heads)."""

    name: str
    settings: type
    fit: FitFunction
    fitted: type
    maps: Callable[[tuple[int, int]], bool] = lambda equivariance: True


def _ridge(features, invariants, targets, groups, *, intercept, settings) -> RidgeFit:
    return fit_ridge(features, targets, groups, intercept=intercept, settings=settings)


def _minibatch(features, invariants, targets, groups, *, intercept, settings) -> LinearFit:
    return fit_minibatch(features, targets, intercept=intercept, settings=settings)


#: Every head kind, by name.
HEADS: dict[str, HeadKind] = {
    kind.name: kind
    for kind in (
        HeadKind("ridge", RidgeSettings, _ridge, RidgeFit),
        HeadKind("kernel", KernelSettings, fit_kernel_ridge, KernelFit),
        HeadKind("minibatch", MinibatchSettings, _minibatch, LinearFit),
        HeadKind("gated", GatedSettings, fit_gated, GatedHead),
    )
}

HeadSettings = Any
HeadFit = Head


def head_kind(name: str) -> HeadKind:
    """The registered kind ``name``; ``InputError`` listing the known ones otherwise."""
    if name not in HEADS:
        raise InputError(f"unknown head kind {name!r}; choose one of {sorted(HEADS)}")
    return HEADS[name]


def kind_of_settings(settings: HeadSettings) -> HeadKind:
    return next(kind for kind in HEADS.values() if type(settings) is kind.settings)


def fit_head(
    settings: HeadSettings,
    features: torch.Tensor,
    invariants: torch.Tensor,
    targets: torch.Tensor,
    groups: torch.Tensor,
    *,
    intercept: bool,
    equivariance: tuple[int, int] = (0, 1),
) -> Head:
    """Fit the head that ``settings`` names. features (n, 2 lambda + 1, q); invariants (n, 1, q0)
    the same samples' lambda = 0 features; targets (n, 2 lambda + 1, t); groups (n,) molecule of
    each sample; ``equivariance`` (lambda, sigma) of the block, checked against the kind's ``maps``."""
    kind = kind_of_settings(settings)
    if not kind.maps(tuple(equivariance)):
        raise InputError(f"head kind {kind.name!r} cannot fit (lambda, sigma) = {tuple(equivariance)} blocks")
    return kind.fit(features, invariants, targets, groups, intercept=intercept, settings=settings)


def predict_head(fit: Head, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
    """(n, 2 lambda + 1, t) predictions, on the device of ``features``."""
    return fit.to(features.device).predict(features, invariants)


def settings_to_dict(settings: HeadSettings) -> dict:
    """Plain data with the kind's name under ``kind`` (tuples as lists)."""
    return {
        "kind": kind_of_settings(settings).name,
        **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()},
    }


def settings_from_dict(data: dict) -> HeadSettings:
    """Inverse of :func:`settings_to_dict`; ``InputError`` naming an unknown head kind."""
    data = dict(data)
    kind = head_kind(data.pop("kind", "ridge"))
    return kind.settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def fit_state(fit: Head) -> dict:
    """{"kind": the registered name of the fit's class, "state": its plain data}."""
    kind = next(kind for kind in HEADS.values() if type(fit) is kind.fitted)
    return {"kind": kind.name, "state": fit.state()}


def fit_from_state(data: dict) -> Head:
    return head_kind(data["kind"]).fitted.from_state(data["state"])
