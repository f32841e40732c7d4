"""The orbital-energy plot shows errors in meV, occupied and virtual states apart, with their MAEs
written in the figure: a parity plot over tens of eV cannot show meV errors."""

import numpy as np
import pytest
from matplotlib.text import Text

from nhamil.evaluate.plots import energy_error_figure, energy_parity, orbital_energy_parity
from nhamil.units import HARTREE_TO_MEV


def _energies(seed: int, sizes: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(predicted, reference) ascending orbital energies (Hartree) with a core state near -20 Ha,
    valence and virtual states, and errors of tens of meV."""
    rng = np.random.default_rng(seed)
    reference = [
        np.sort(np.r_[-20.5, rng.uniform(-1.4, -0.4, n // 4), rng.uniform(0.1, 1.8, n - 1 - n // 4)]) for n in sizes
    ]
    return [r + rng.normal(0, 1e-3, len(r)) for r in reference], reference


def _texts(figure) -> list[str]:
    return [text.get_text() for text in figure.findobj(Text)]


def test_legend_states_the_occupied_and_virtual_maes():
    predicted, reference = _energies(0, [24, 24, 40])
    n_occupied = [5, 6, 9]
    errors = [(p - r) * HARTREE_TO_MEV for p, r in zip(predicted, reference, strict=True)]
    occupied = np.concatenate([e[:n] for e, n in zip(errors, n_occupied, strict=True)])
    virtual = np.concatenate([e[n:] for e, n in zip(errors, n_occupied, strict=True)])
    figure = energy_error_figure(predicted, reference, n_occupied, title="water")
    scatter = figure.axes[0]
    labels = [t.get_text() for t in scatter.get_legend().get_texts()]
    assert labels == [
        f"occupied: MAE {np.abs(occupied).mean():.1f} meV ({len(occupied)} states)",
        f"virtual: MAE {np.abs(virtual).mean():.1f} meV ({len(virtual)} states)",
    ]
    assert scatter.get_title() == "water"
    assert scatter.get_ylabel() == "predicted - reference (meV)"
    offsets = np.concatenate([c.get_offsets()[:, 1] for c in scatter.collections])
    np.testing.assert_allclose(np.sort(offsets), np.sort(np.r_[occupied, virtual]))  # errors plotted, in meV


def test_all_occupied_states_show_no_virtual_series():
    predicted, reference = _energies(1, [6, 6])
    texts = _texts(energy_error_figure(predicted, reference, [6, 6]))
    assert any(t.startswith("occupied: MAE") for t in texts) and not any("virtual" in t for t in texts)


def test_writes_png_files_from_energies_and_from_matrices(tmp_path):
    predicted, reference = _energies(2, [24, 30])
    path = energy_parity(predicted, reference, [5, 6], tmp_path / "energies.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rng = np.random.default_rng(3)
    matrices = [a + a.T for a in (rng.normal(size=(n, n)) for n in (8, 11))]
    path = orbital_energy_parity(
        [m + 1e-4 * np.eye(len(m)) for m in matrices], matrices, [3, 4], tmp_path / "orbital_energies.png"
    )
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_mismatched_structure_counts_raise():
    predicted, reference = _energies(4, [24, 24])
    with pytest.raises(ValueError):
        energy_error_figure(predicted, reference, [5])
