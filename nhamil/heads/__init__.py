"""Regression heads: one equivariant model per block key (ridge, kernel ridge, minibatch linear)."""

from .kernel import KernelFit, KernelSettings, farthest_point_sampling, fit_kernel_ridge
from .minibatch import MinibatchSettings, fit_minibatch
from .ridge import RidgeFit, RidgeSettings, fit_ridge
from .select import (HeadFit, HeadSettings, fit_from_state, fit_head, fit_state, predict_head, settings_from_dict,
                     settings_to_dict)

__all__ = [
    "HeadFit", "HeadSettings", "KernelFit", "KernelSettings", "MinibatchSettings", "RidgeFit", "RidgeSettings",
    "farthest_point_sampling", "fit_from_state", "fit_head", "fit_kernel_ridge", "fit_minibatch", "fit_ridge",
    "fit_state", "predict_head", "settings_from_dict", "settings_to_dict",
]
