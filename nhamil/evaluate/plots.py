"""Plots of predictions against references, saved as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..units import HARTREE_TO_MEV  # noqa: E402
from .metrics import orbital_energies  # noqa: E402


def orbital_energy_parity(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], path: str | Path,
                          title: str = "") -> Path:
    """Predicted against reference orbital energies (eV), and the error per state index (meV)."""
    eig_pred, eig_ref = np.array(orbital_energies(predicted)), np.array(orbital_energies(reference))
    figure, (parity, per_state) = plt.subplots(1, 2, figsize=(10, 4.5))
    parity.scatter(eig_ref * HARTREE_TO_MEV / 1000, eig_pred * HARTREE_TO_MEV / 1000, s=8)
    bounds = [eig_ref.min() * HARTREE_TO_MEV / 1000, eig_ref.max() * HARTREE_TO_MEV / 1000]
    parity.plot(bounds, bounds, color="gray", lw=0.8)
    parity.set(xlabel="reference orbital energy (eV)", ylabel="predicted (eV)", title=title)
    errors = np.abs(eig_pred - eig_ref) * HARTREE_TO_MEV
    per_state.boxplot(errors, showfliers=False)
    per_state.set(xlabel="state index", ylabel="|error| (meV)", title="error per state")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
