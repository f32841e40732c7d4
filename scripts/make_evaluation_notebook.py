"""Write ``scripts/evaluate_water.ipynb``: the evaluation notebook of a trained water run.

    python scripts/make_evaluation_notebook.py

The notebook evaluates the run folder ``NHAMIL_RUN_DIR``, by default
``outputs/evaluate-water`` in its working folder (the notebook's own folder under Jupyter,
``jupyter nbconvert --execute`` and ``jupyter execute``); if that folder holds no ``model.pt``
it first trains a small water run there (``python -m nhamil.train``, the water frames shipped
with nhamil). It predicts the run's test frames, plots predicted against reference orbital
energies and the error per orbital, and checks that a rotated and reflected molecule has the
same eigenvalues. ``tests/test_notebook.py`` executes it both ways.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).resolve().parent / "evaluate_water.ipynb"

CELLS = [
    (
        "markdown",
        """# Evaluating a trained water model

What a predicted Hamiltonian gives a chemist: orbital energies, frontier levels, dipoles.
Set `NHAMIL_RUN_DIR` to a run folder of `python -m nhamil.train +experiment=water_fock`
(or `+experiment=water`). By default the notebook uses `outputs/evaluate-water` beside itself
(its working folder), and trains a small water run there first if it holds no model (about
half a minute: 10 training frames, full Fock matrix, RHF/def2-SVP).""",
    ),
    (
        "code",
        """import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from nhamil.evaluate import evaluate_predictions, load_run, per_state_mae, scf_settings, split_frames
from nhamil.orbitals import random_rotation
from nhamil.reference import build_reference_set
from nhamil.units import HARTREE_TO_MEV""",
    ),
    (
        "code",
        """def train_small_water_run(run_dir):
    \"\"\"Train frames 0-9 of the packaged water set, test on 10-11, into run_dir.\"\"\"
    command = [sys.executable, "-m", "nhamil.train", "+experiment=water_fock", "split.train=[0,10]",
               "split.test=[10,12]", "data.n_workers=1", "features.density.max_radial=3",
               "features.density.max_angular=3", f"hydra.run.dir={run_dir}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"training a water run into {run_dir} failed: {result.stderr.strip()}")
    print(result.stdout.splitlines()[-1])


run_dir = Path(os.environ.get("NHAMIL_RUN_DIR") or "outputs/evaluate-water").resolve()
if not (run_dir / "model.pt").exists():
    train_small_water_run(run_dir)
model, cfg = load_run(run_dir)
settings = scf_settings(cfg)
frames = split_frames(cfg, "test")
records = build_reference_set(frames, settings, model.target.projection, cfg.data.cache_dir, n_workers=1)
predicted = [matrix.numpy() for matrix in model.predict(frames)]
print(f"{run_dir}: {model.target} in {model.basis.name}, {len(frames)} test frames")""",
    ),
    ("markdown", "## Errors of the test frames (meV for energies, Debye for dipoles)"),
    (
        "code",
        """evaluations, metrics = evaluate_predictions(model, predicted, frames, records, settings, progress=False)
for name, value in metrics.items():
    if isinstance(value, float):
        print(f"{name:32s} {value:12.4f}")
print("structures with spurious states:", metrics["spurious_structures"] or "none")""",
    ),
    ("markdown", "## Predicted against reference orbital energies, and the error per orbital"),
    (
        "code",
        """predicted_energies = np.stack([e.predicted.energies for e in evaluations]) * HARTREE_TO_MEV / 1000
reference_energies = np.stack([e.reference.energies for e in evaluations]) * HARTREE_TO_MEV / 1000
n_occupied = evaluations[0].reference.n_occupied
figure, (parity, per_orbital) = plt.subplots(1, 2, figsize=(11, 4.5))
parity.scatter(reference_energies[:, :n_occupied], predicted_energies[:, :n_occupied], s=10, label="occupied")
parity.scatter(reference_energies[:, n_occupied:], predicted_energies[:, n_occupied:], s=10, label="virtual")
bounds = [reference_energies.min(), reference_energies.max()]
parity.plot(bounds, bounds, color="gray", lw=0.8)
parity.set(xlabel="reference orbital energy (eV)", ylabel="predicted (eV)")
parity.legend()
errors = per_state_mae(evaluations)
per_orbital.bar(np.arange(1, len(errors) + 1), errors,
                color=["C0" if k < n_occupied else "C1" for k in range(len(errors))])
per_orbital.set(xlabel="orbital index", ylabel="MAE (meV)", yscale="log", title="error per orbital")
figure.tight_layout()
plt.show()""",
    ),
    (
        "markdown",
        """## Symmetry: a rotated and reflected molecule has the same eigenvalues

The model is equivariant, so the predicted matrix of a moved molecule is `D F D^T` and its
eigenvalues do not change (to float64 round-off).""",
    ),
    (
        "code",
        """atoms = frames[0]
rotation = random_rotation(torch.Generator().manual_seed(0), improper=True).numpy()
moved = atoms.copy()
moved.positions = atoms.positions @ rotation.T + np.array([1.0, -2.0, 0.5])
original, rotated = (np.linalg.eigvalsh(matrix.numpy()) for matrix in model.predict([atoms, moved]))
largest_difference = np.abs(original - rotated).max()
print(f"largest eigenvalue difference after rotation: {largest_difference:.2e} Ha")
assert largest_difference < 1e-8""",
    ),
]


def build_notebook() -> nbformat.NotebookNode:
    """The notebook, unexecuted, with a Python 3 kernel spec and numbered cell ids (so that
    rewriting it changes only what changed in ``CELLS``)."""
    cells = [
        new_markdown_cell(text, id=f"cell-{index}") if kind == "markdown" else new_code_cell(text, id=f"cell-{index}")
        for index, (kind, text) in enumerate(CELLS)
    ]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return new_notebook(cells=cells, metadata={"kernelspec": kernel, "language_info": {"name": "python"}})


def main() -> None:
    temporary = NOTEBOOK.with_suffix(".ipynb.tmp")
    nbformat.write(build_notebook(), temporary)
    temporary.replace(NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
