"""Plots of predictions against references (errors in meV, parities), saved as PNG (atomically).

Figures are made with matplotlib's object API (``Figure``), not pyplot: no global backend is
switched, so a notebook keeps its inline plots and a headless run needs no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FormatStrFormatter, MaxNLocator, NullLocator

from ..atomic import atomic_path
from ..units import HARTREE_TO_MEV
from .metrics import orbital_energies
from .physics import StructureEvaluation

_HARTREE_TO_EV = HARTREE_TO_MEV / 1000


#: Reference energies (eV) beyond +- this are drawn on a logarithmic scale, so that core states
#: (water's O 1s lies at -560 eV) do not squeeze the valence and virtual states together.
_LINEAR_WITHIN_EV = 50.0
_SYMLOG_TICKS_EV = (-5000, -1000, -500, -100, -25, 0, 25, 50, 500, 1000)


def orbital_energy_parity(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    path: str | Path,
    title: str = "",
    overlaps: Sequence[np.ndarray] | None = None,
) -> Path:
    """:func:`energy_parity` of the orbital energies of the matrices (Hartree): eigenvalues, or
    generalized ones with the AO ``overlaps`` of a non-orthogonal target; ``n_occupied``:
    occupied states of each structure. Molecules may differ in size."""
    return energy_parity(
        orbital_energies(predicted, overlaps), orbital_energies(reference, overlaps), n_occupied, path, title
    )


def energy_parity(
    predicted: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    n_occupied: Sequence[int],
    path: str | Path,
    title: str = "",
) -> Path:
    """Save :func:`energy_error_figure` as a PNG (atomically); returns ``path``."""
    return _save(energy_error_figure(predicted, reference, n_occupied, title), path)


def energy_error_figure(
    predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], n_occupied: Sequence[int], title: str = ""
) -> Figure:
    """Errors of orbital energies, predicted minus reference (meV), against the reference
    energy (eV), occupied and virtual states apart (the first ``n_occupied[k]`` states of
    structure k are occupied), with their MAEs in the legend; and a box plot of the
    absolute error per state index, counted from the lowest state over the structures that have
    it. Energies: Hartree, one array per structure, ascending; sizes may differ between
    structures, not between a structure's prediction and reference."""
    errors = [(np.asarray(p) - np.asarray(r)) * HARTREE_TO_MEV for p, r in zip(predicted, reference, strict=True)]
    occupied = [np.arange(len(e)) < n for e, n in zip(errors, n_occupied, strict=True)]
    by_state = [np.array([abs(e[k]) for e in errors if len(e) > k]) for k in range(max(len(e) for e in errors))]
    figure = Figure(figsize=(11, 4.5))
    scatter, per_state = figure.subplots(1, 2, width_ratios=(3, 2))
    _error_scatter(
        scatter, np.concatenate(reference) * _HARTREE_TO_EV, np.concatenate(errors), np.concatenate(occupied)
    )
    scatter.set(title=title)
    _per_state(per_state, by_state, set(n_occupied))
    return figure


def _per_state(ax, by_state: list[np.ndarray], n_occupied: set[int]) -> None:
    """Box plot of |error| (meV) per state index (1 = lowest); a dashed line between HOMO and
    LUMO when every structure has the same number of occupied states."""
    ax.boxplot(by_state, showfliers=False)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%d"))
    if len(n_occupied) == 1:
        ax.axvline(next(iter(n_occupied)) + 0.5, color="gray", ls="--", lw=0.8, label="HOMO | LUMO")
        ax.legend(loc="upper left")
    ax.set(xlabel="state index (from the lowest)", ylabel="|error| (meV)", title="error per state")


def _error_scatter(ax, reference_ev: np.ndarray, errors_mev: np.ndarray, occupied: np.ndarray) -> None:
    """Errors (meV) against reference energies (eV), occupied and virtual in two styles, a zero
    line, and a legend that states the MAE of each set."""
    for chosen, name, style in (
        (occupied, "occupied", {"marker": "o", "color": "tab:blue"}),
        (~occupied, "virtual", {"marker": "^", "color": "tab:orange"}),
    ):
        if chosen.any():
            mae = float(np.abs(errors_mev[chosen]).mean())
            ax.scatter(
                reference_ev[chosen],
                errors_mev[chosen],
                s=10,
                alpha=0.6,
                label=f"{name}: MAE {mae:.1f} meV ({chosen.sum()} states)",
                **style,
            )
    ax.axhline(0.0, color="gray", lw=0.8)
    if np.abs(reference_ev).max() > _LINEAR_WITHIN_EV:
        ax.set_xscale("symlog", linthresh=_LINEAR_WITHIN_EV, linscale=2.0)
        ticks = [t for t in _SYMLOG_TICKS_EV if reference_ev.min() - 50 < t < reference_ev.max() + 50]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(loc="best", framealpha=0.9)
    scale = f", logarithmic beyond ±{_LINEAR_WITHIN_EV:g}" if ax.get_xscale() == "symlog" else ""
    ax.set(xlabel=f"reference orbital energy (eV{scale})", ylabel="predicted - reference (meV)")


def frontier_parity(evaluations: Sequence[StructureEvaluation], path: str | Path) -> Path:
    """Parity plots of HOMO, LUMO and HOMO-LUMO gap (eV)."""
    figure = Figure(figsize=(13, 4.2))
    axes = figure.subplots(1, 3)
    for ax, name in zip(axes, ("homo", "lumo", "gap"), strict=True):
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
