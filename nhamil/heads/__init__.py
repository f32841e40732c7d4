"""Regression heads: one equivariant model per block key."""

from .ridge import RidgeFit, RidgeSettings, fit_ridge

__all__ = ["RidgeFit", "RidgeSettings", "fit_ridge"]
