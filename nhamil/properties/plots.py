"""PNG plots of the property comparison (written atomically)."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nhamil.atomic import atomic_path  # noqa: E402

UNITS = {"dipole": "D", "polarizability": "bohr$^3$"}


def plot_learning_curves(metrics: dict, path: Path) -> None:
    """Test RMSE of components against training size, one panel per property, log-log."""
    figure, axes = plt.subplots(1, len(UNITS), figsize=(10, 4))
    for axis, prop in zip(axes, UNITS, strict=True):
        curves = {}
        for key, value in metrics.items():
            match = re.fullmatch(rf"{prop}/(\w+)/n(\d+)/rmse", key)
            if match:
                curves.setdefault(match[1], []).append((int(match[2]), value))
        for name, points in curves.items():
            axis.loglog(*zip(*sorted(points), strict=True), "o-", label=name)
        axis.set(xlabel="training frames", ylabel=f"test RMSE ({UNITS[prop]})", title=prop)
        axis.legend()
    _save(figure, path)


def plot_trajectory(trajectory, test: np.ndarray, predictions: dict, jumps: np.ndarray, path: Path) -> None:
    """Dipole x component and polarizability xx along the test frames, reference and models,
    with the principal-frame jumps marked."""
    figure, axes = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    series = {
        "dipole": (trajectory.dipoles[test, 0], lambda p: p[:, 0], "$\\mu_x$ (D)"),
        "polarizability": (trajectory.polarizabilities[test, 0, 0], lambda p: p[:, 0, 0], "$\\alpha_{xx}$ (bohr$^3$)"),
    }
    for axis, (prop, (reference, component, label)) in zip(axes, series.items(), strict=True):
        axis.plot(test, reference, "k-", lw=2, label="PySCF")
        for name, predicted in predictions[prop].items():
            axis.plot(test, component(predicted), lw=1, label=name)
        for t in jumps:
            axis.axvline(test[t], color="grey", lw=0.5, ls=":")
        axis.set_ylabel(label)
    axes[0].legend(ncol=5, fontsize=8)
    axes[1].set_xlabel("MD frame (1 step each; dotted: principal-frame jumps)")
    _save(figure, path)


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
