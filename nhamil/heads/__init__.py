"""Regression heads: one equivariant model per block key (ridge, kernel ridge, minibatch linear, gated),
registered by name in :data:`HEADS`."""

from .gated import GATES, GatedHead, GatedSettings, GateSettings, fit_gated, split_molecules
from .kernel import KernelFit, KernelSettings, farthest_point_sampling, fit_kernel_ridge
from .minibatch import MinibatchSettings, fit_minibatch
from .registry import (
    HEADS,
    Head,
    HeadFit,
    HeadKind,
    HeadSettings,
    fit_from_state,
    fit_head,
    fit_state,
    head_kind,
    predict_head,
    settings_from_dict,
    settings_to_dict,
)
from .ridge import LinearFit, RidgeFit, RidgeSettings, fit_ridge

__all__ = [
    "GATES",
    "GatedHead",
    "GatedSettings",
    "GateSettings",
    "HEADS",
    "Head",
    "HeadFit",
    "HeadKind",
    "HeadSettings",
    "KernelFit",
    "KernelSettings",
    "LinearFit",
    "MinibatchSettings",
    "RidgeFit",
    "RidgeSettings",
    "farthest_point_sampling",
    "fit_from_state",
    "fit_gated",
    "fit_head",
    "fit_kernel_ridge",
    "fit_minibatch",
    "fit_ridge",
    "fit_state",
    "head_kind",
    "predict_head",
    "settings_from_dict",
    "settings_to_dict",
    "split_molecules",
]
