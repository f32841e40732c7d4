"""Plots of predictions against references, saved as PNG (atomically).

Figures are made with matplotlib's object API (``Figure``), not pyplot: no global backend is
switched, so a notebook keeps its inline plots and a headless run needs no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..units import HARTREE_TO_MEV
from ..atomic import atomic_path
from .metrics import orbital_energies
from .physics import StructureEvaluation

_HARTREE_TO_EV = HARTREE_TO_MEV / 1000


def orbital_energy_parity(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], path: str | Path,
                          title: str = "", overlaps: Sequence[np.ndarray] | None = None) -> Path:
    """Predicted against reference orbital energies (eV) of the matrices (generalized with the AO
    ``overlaps`` of a non-orthogonal target), and the error per state index (meV); molecules
    may differ in size."""
    return energy_parity(orbital_energies(predicted, overlaps), orbital_energies(reference, overlaps), path, title)


def energy_parity(predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], path: str | Path,
                  title: str = "") -> Path:
    """Parity of orbital energies (Hartree, shown in eV; one array per structure, sizes may
    differ) and a box plot of the absolute error per state index (meV), counted from the lowest
    state over the structures that have it."""
    errors = [np.abs(np.asarray(p) - np.asarray(r)) * HARTREE_TO_MEV for p, r in zip(predicted, reference)]
    by_state = [np.array([e[k] for e in errors if len(e) > k]) for k in range(max(len(e) for e in errors))]
    figure = Figure(figsize=(10, 4.5))
    parity, per_state = figure.subplots(1, 2)
    _parity(parity, np.concatenate(reference) * _HARTREE_TO_EV, np.concatenate(predicted) * _HARTREE_TO_EV)
    parity.set(xlabel="reference orbital energy (eV)", ylabel="predicted (eV)", title=title)
    per_state.boxplot(by_state, showfliers=False)
    per_state.set(xlabel="state index", ylabel="|error| (meV)", title="error per state")
    return _save(figure, path)


def frontier_parity(evaluations: Sequence[StructureEvaluation], path: str | Path) -> Path:
    """Parity plots of HOMO, LUMO and HOMO-LUMO gap (eV)."""
    figure = Figure(figsize=(13, 4.2))
    axes = figure.subplots(1, 3)
    for ax, name in zip(axes, ("homo", "lumo", "gap")):
        reference = [getattr(e.reference, name) * _HARTREE_TO_EV for e in evaluations]
        predicted = [getattr(e.predicted, name) * _HARTREE_TO_EV for e in evaluations]
        _parity(ax, np.array(reference), np.array(predicted))
        ax.set(xlabel=f"reference {name.upper()} (eV)", ylabel="predicted (eV)")
    return _save(figure, path)


def dipole_parity(evaluations: Sequence[StructureEvaluation], path: str | Path) -> Path:
    """Parity of dipole components (Debye), predicted density against PySCF's."""
    figure = Figure(figsize=(4.8, 4.5))
    ax = figure.subplots()
    reference = np.stack([e.dipole_reference for e in evaluations])
    predicted = np.stack([e.dipole_predicted for e in evaluations])
    _parity(ax, reference.ravel(), predicted.ravel())
    ax.set(xlabel="PySCF dipole component (D)", ylabel="from predicted density (D)")
    return _save(figure, path)


def _parity(ax, reference: np.ndarray, predicted: np.ndarray) -> None:
    ax.scatter(reference, predicted, s=8)
    bounds = [reference.min(), reference.max()]
    ax.plot(bounds, bounds, color="gray", lw=0.8)


def _save(figure: Figure, path: str | Path) -> Path:
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    return Path(path)
