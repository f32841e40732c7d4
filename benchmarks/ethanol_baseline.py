"""How hard are ethanol's orbital energies? A global, symmetry-agnostic baseline.

    OPENBLAS_NUM_THREADS=1 python benchmarks/ethanol_baseline.py [--target saph] [--n-train 800]

Gaussian kernel ridge from the 36 inverse interatomic distances of each frame (atoms in the
file's fixed order, standardized) straight to the 18 SAPH eigenvalues (or to the occupied ones
of the full Fock with ``--target fock_orthogonal``). Eigenvalues are invariant, so no symmetry
adaptation is needed; the kernel width and regularization come from 4-fold cross-validation on
the training frames. Test: the last 200 frames. Prints the MAE per state and overall (meV),
next to the spread of each state over the test frames, to set nhamil's ethanol errors in context.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from kernel_ridge import gaussian, ridge_errors, ridge_solve

from nhamil.data import data_file
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, read_frames
from nhamil.targets import make_targets
from nhamil.units import HARTREE_TO_MEV

WIDTHS, ALPHAS, FOLDS = (2.0, 4.0, 8.0, 16.0), (1e-10, 1e-8, 1e-6, 1e-4), 4


def inverse_distances(frames) -> np.ndarray:
    """(n_frames, n_atoms (n_atoms - 1) / 2) inverse distances (1/Å), upper triangle."""
    upper = np.triu_indices(len(frames[0]), 1)
    return np.stack([1.0 / atoms.get_all_distances()[upper] for atoms in frames])


def cross_validated(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(width, alpha) with the lowest absolute error over ``FOLDS`` interleaved folds."""
    folds = [torch.arange(k, len(x), FOLDS) for k in range(FOLDS)]
    errors = {width: ridge_errors(gaussian(x, x, width), y, folds, ALPHAS) for width in WIDTHS}
    width = min(errors, key=lambda w: float(errors[w].min()))
    return width, ALPHAS[int(errors[width].argmin())]


def predict(
    x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, width: float, alpha: float
) -> torch.Tensor:
    """(n_test, t) kernel ridge predictions, centred targets."""
    mean = y_train.mean(dim=0)
    weights = ridge_solve(gaussian(x_train, x_train, width), y_train - mean, alpha)
    return gaussian(x_test, x_train, width) @ weights + mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["saph", "fock_orthogonal"], default="saph")
    parser.add_argument("--n-train", type=int, default=800)
    parser.add_argument("--cache-dir", default=".nhamil-cache")
    args = parser.parse_args()
    frames = read_frames(data_file("ethanol-structures.xyz"))
    records = build_reference_set(frames, ScfSettings(), ProjectionSettings(), args.cache_dir, n_workers=1)
    targets = make_targets(records, args.target, AtomicBasis.from_pyscf("def2-svp", [1, 6, 8]), ProjectionSettings())
    n_states = len(targets.matrices[0]) if args.target == "saph" else targets.n_occupied[0]
    energies = np.stack([np.linalg.eigvalsh(m)[:n_states] for m in targets.matrices]) * HARTREE_TO_MEV
    x = inverse_distances(frames)
    x = torch.as_tensor((x - x[: args.n_train].mean(axis=0)) / x[: args.n_train].std(axis=0))
    train, test = slice(0, args.n_train), slice(len(frames) - 200, len(frames))
    width, alpha = cross_validated(x[train], torch.as_tensor(energies[train]))
    predicted = predict(x[train], torch.as_tensor(energies[train]), x[test], width, alpha).numpy()
    error = np.abs(predicted - energies[test]).mean(axis=0)
    print(f"{args.target}, {args.n_train} training frames, width {width}, alpha {alpha:g}")
    print("state  MAE (meV)  spread over test frames, std (meV)")
    for state, (mae, spread) in enumerate(zip(error, energies[test].std(axis=0), strict=True)):
        print(f"{state:5d}  {mae:9.1f}  {spread:9.1f}")
    print(f"mean MAE over states: {error.mean():.1f} meV")


if __name__ == "__main__":
    main()
