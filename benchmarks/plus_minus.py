"""+/- pairs: a model on the centre's nu = 3 invariants against the same model on triplet features.

    OPENBLAS_NUM_THREADS=1 python benchmarks/plus_minus.py

1. Draws ``--n-pairs`` random +/- pairs (``nhamil.features.plus_minus``: a carbon centre, two
   rings of three H turned against each other, an O cap above or below; CH6O; random ring
   shape and twist, bond lengths within ``RANGES``) and computes their
   RHF/STO-3G energies with PySCF (cached under ``--cache-dir``, resumable); pairs with an
   unconverged member are dropped.
2. Splits by pair (``--train-fraction`` of the pairs for training, the rest for testing).
3. Fits one regressor twice: kernel ridge with a sum-of-Gaussians set kernel
   K(A, B) = sum_{a in A, b in B, same elements} exp(-|x_a - x_b|^2 / (2 w^2)), w and the
   regularization by 5-fold cross-validation over training pairs, rows x reduced by PCA
   (``--components``, fitted on training rows). (a) nu = 3: each structure's set is the one
   nu = 3 invariant vector of its carbon, so K is a Gaussian kernel; (b) triplets: the set of
   pair-symmetrized triplet invariants of the carbon, one row per pair of its neighbours.
4. Prints the test MAE of the energies, the mean half difference |E+ - E-| / 2 of the test pairs
   and the MAE of the predicted difference E+ - E-; writes ``benchmarks/results/plus_minus.json``
   and ``benchmarks/results/plus_minus.png``.

Since the nu = 3 invariants of the two members are equal, model (a) predicts the same energy for
both: its error cannot fall below about |E+ - E-| / 2, and its predicted difference is zero.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.features import DensitySettings
from nhamil.features.plus_minus import CentreInvariants, GeometryRanges, centre_invariants, random_geometries
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPECIES = (1, 6, 8)
WIDTHS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # Gaussian widths, in units of the median row distance
ALPHAS = tuple(10.0 ** k for k in range(-10, 1))  # regularization, relative to the kernel's mean diagonal
#: Bond lengths vary by a few per cent only: most of the energy's spread then comes from the ring
#: shape and the twist, which also set E+ - E-. With the generator's wide default ranges the
#: pair means spread over 70 mHa (std) against 30 mHa mean |E+ - E-|, and 450 training pairs
#: learn them to about 14 mHa.
RANGES = GeometryRanges(radius=(1.15, 1.2), height=(0.5, 0.55), cap=(1.4, 1.45))
MILLI = 1000.0


@dataclass(frozen=True)
class Rows:
    """A set of feature rows per structure: rows (m, d), structure (m,) owner of each row,
    labels (m,) element code (only rows with equal labels meet in the kernel), n structures."""

    rows: torch.Tensor
    structure: torch.Tensor
    labels: torch.Tensor
    n: int

    def subset(self, structures: torch.Tensor) -> Rows:
        """The rows of ``structures`` (k,), renumbered 0 .. k - 1 in that order."""
        new_index = torch.full((self.n,), -1, dtype=torch.long)
        new_index[structures] = torch.arange(len(structures))
        keep = new_index[self.structure] >= 0
        return Rows(self.rows[keep], new_index[self.structure[keep]], self.labels[keep], len(structures))


def pair_energies(n_pairs: int, seed: int, args) -> tuple[list, np.ndarray]:
    """Frames (plus, minus, plus, minus, ...) and (n_kept, 2) RHF energies (Hartree) of the
    pairs whose two SCF runs converged."""
    frames = [atoms for geometry in random_geometries(n_pairs, seed, RANGES) for atoms in geometry.pair()]
    scf = ScfSettings(method="rhf", basis=args.basis)
    records = build_reference_set(frames, scf, ProjectionSettings(extra_candidates=0), args.cache_dir,
                                  n_workers=args.n_workers, allow_unconverged=True)
    converged = np.array([r.converged for r in records]).reshape(-1, 2).all(axis=1)
    energies = np.array([r.e_tot for r in records]).reshape(-1, 2)
    kept = np.repeat(converged, 2)
    return [atoms for atoms, keep in zip(frames, kept) if keep], energies[converged]


def feature_rows(frames: list, settings: DensitySettings, chunk: int = 50) -> tuple[Rows, Rows]:
    """(nu = 3 rows, one per structure; pair-symmetrized triplet rows) of atom 0 of every frame."""
    parts = [centre_invariants(frames[start:start + chunk], SPECIES, settings)
             for start in tqdm(range(0, len(frames), chunk), desc="features", unit="chunk")]
    offsets = np.cumsum([0] + [len(part.nu3) for part in parts[:-1]])
    invariants = CentreInvariants(torch.cat([p.nu3 for p in parts]), torch.cat([p.pairs for p in parts]),
                                  torch.cat([p.pair_structure + int(o) for p, o in zip(parts, offsets)]),
                                  torch.cat([p.pair_elements for p in parts]))
    n = len(frames)
    nu3 = Rows(invariants.nu3, torch.arange(n), torch.zeros(n, dtype=torch.long), n)
    labels = invariants.pair_elements[:, 0] * 1000 + invariants.pair_elements[:, 1]
    return nu3, Rows(invariants.pairs, invariants.pair_structure, labels, n)


def reduce_rows(train: Rows, test: Rows, components: int) -> tuple[Rows, Rows, float]:
    """Both row sets projected on the ``components`` principal axes of the training rows, and the
    median distance between training rows (the unit of the Gaussian widths)."""
    mean = train.rows.mean(dim=0)
    _, _, axes = torch.pca_lowrank(train.rows - mean, q=min(components, *train.rows.shape), center=False, niter=4)
    project = lambda rows: Rows((rows.rows - mean) @ axes, rows.structure, rows.labels, rows.n)  # noqa: E731
    reduced_train = project(train)
    sample = reduced_train.rows[torch.randperm(len(reduced_train.rows), generator=torch.Generator().manual_seed(0))[:2000]]
    return reduced_train, project(test), float(torch.pdist(sample).median())


def set_kernels(first: Rows, second: Rows, widths: list[float], chunk: int = 1024) -> torch.Tensor:
    """(len(widths), first.n, second.n) sums over row pairs with equal labels of
    exp(-|x_a - x_b|^2 / (2 w^2))."""
    kernels = torch.zeros(len(widths), first.n, second.n, dtype=first.rows.dtype)
    for start in range(0, len(first.rows), chunk):
        rows = slice(start, start + chunk)
        squared = torch.cdist(first.rows[rows], second.rows).square()
        squared[first.labels[rows, None] != second.labels[None, :]] = float("inf")
        for index, width in enumerate(widths):
            by_second = torch.zeros(second.n, squared.shape[0], dtype=squared.dtype)
            by_second.index_add_(0, second.structure, torch.exp(-squared / (2 * width**2)).T)
            kernels[index].index_add_(0, first.structure[rows], by_second.T)
    return kernels


def ridge_solve(kernel: torch.Tensor, targets: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weights c of (K + alpha mean(diag K) I) c = targets."""
    regularized = kernel + alpha * kernel.diagonal().mean() * torch.eye(len(kernel), dtype=kernel.dtype)
    return torch.linalg.solve(regularized, targets)


def cross_validate(kernels: torch.Tensor, targets: torch.Tensor, folds: list[torch.Tensor]) -> tuple[int, float]:
    """(width index, alpha) with the lowest mean absolute validation error; ``folds`` hold the
    validation structures of each fold (whole pairs)."""
    errors = {}
    for width in range(len(kernels)):
        for alpha in ALPHAS:
            total = 0.0
            for validation in folds:
                train = torch.ones(len(targets), dtype=torch.bool)
                train[validation] = False
                mean = targets[train].mean()
                weights = ridge_solve(kernels[width][train][:, train], targets[train] - mean, alpha)
                total += float((kernels[width][validation][:, train] @ weights + mean - targets[validation]).abs().sum())
            errors[(width, alpha)] = total
    return min(errors, key=errors.get)


def fit_predict(train: Rows, test: Rows, targets: torch.Tensor, folds: list[torch.Tensor], components: int) -> dict:
    """Cross-validated set-kernel ridge on ``train`` (targets (train.n,), Hartree); predictions
    for ``test`` (test.n,) and the chosen hyperparameters."""
    train, test, unit = reduce_rows(train, test, components)
    widths = [unit * w for w in WIDTHS]
    width, alpha = cross_validate(set_kernels(train, train, widths), targets, folds)
    kernel = set_kernels(train, train, [widths[width]])[0]
    mean = targets.mean()
    weights = ridge_solve(kernel, targets - mean, alpha)
    prediction = set_kernels(test, train, [widths[width]])[0] @ weights + mean
    return {"prediction": prediction, "width": WIDTHS[width], "alpha": alpha}


def pair_folds(n_pairs: int, n_folds: int, seed: int) -> list[torch.Tensor]:
    """Validation structures of each fold: both members of every pair in it (structures 2p, 2p + 1)."""
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed))
    return [torch.stack([2 * pairs, 2 * pairs + 1], dim=1).flatten() for pairs in order.chunk(n_folds)]


def pair_metrics(prediction: torch.Tensor, reference: torch.Tensor) -> dict:
    """mHa errors of (n_pairs * 2,) predictions, members of a pair adjacent."""
    difference = (prediction[0::2] - prediction[1::2]) - (reference[0::2] - reference[1::2])
    return {"energy_mae_mha": MILLI * float((prediction - reference).abs().mean()),
            "difference_mae_mha": MILLI * float(difference.abs().mean())}


def plot(reference: np.ndarray, predictions: dict[str, np.ndarray], path: Path) -> None:
    """Predicted against reference energies and +/- differences, one colour per model, mHa."""
    figure, (energies, differences) = plt.subplots(1, 2, figsize=(10, 4.5))
    offset = reference.mean()
    for name, prediction in predictions.items():
        energies.scatter(MILLI * (reference - offset), MILLI * (prediction - offset), s=8, label=name)
        differences.scatter(MILLI * (reference[0::2] - reference[1::2]), MILLI * (prediction[0::2] - prediction[1::2]),
                            s=8, label=name)
    for axes, title in ((energies, "E - mean (mHa)"), (differences, "E+ - E- (mHa)")):
        low, high = axes.get_xlim()
        axes.plot([low, high], [low, high], color="grey", linewidth=0.8)
        axes.set(xlabel=f"reference {title}", ylabel=f"predicted {title}")
        axes.legend()
    figure.suptitle("+/- pairs, RHF/STO-3G test pairs")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)


def run(args) -> dict:
    """The whole benchmark; returns the JSON record."""
    frames, energies = pair_energies(args.n_pairs, args.seed, args)
    n_pairs = len(energies)
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(args.seed))
    n_train = int(round(args.train_fraction * n_pairs))
    structures = {name: torch.stack([2 * p, 2 * p + 1], dim=1).flatten()
                  for name, p in (("train", order[:n_train]), ("test", order[n_train:]))}
    targets = torch.as_tensor(energies.reshape(-1))
    settings = DensitySettings(max_radial=args.max_radial, max_angular=args.max_angular)
    folds = pair_folds(n_train, 5, args.seed)
    reference = targets[structures["test"]]
    record = {"n_pairs": n_pairs, "n_train_pairs": n_train, "n_test_pairs": n_pairs - n_train,
              "mean_half_difference_mha": MILLI * float((reference[0::2] - reference[1::2]).abs().mean() / 2),
              "all_pairs_mean_abs_difference_mha": MILLI * float(np.abs(energies[:, 0] - energies[:, 1]).mean()),
              "settings": vars(args) | {"cache_dir": str(args.cache_dir)}}
    predictions = {}
    for name, rows in zip(("nu=3", "triplets"), feature_rows(frames, settings)):
        fit = fit_predict(rows.subset(structures["train"]), rows.subset(structures["test"]),
                          targets[structures["train"]], folds, args.components)
        predictions[name] = fit["prediction"].numpy()
        record[name] = pair_metrics(fit["prediction"], reference) | {"width": fit["width"], "alpha": fit["alpha"]}
    plot(reference.numpy(), predictions, RESULTS / "plus_minus.png")
    return record


def report(record: dict) -> None:
    """A Markdown table of the record."""
    print(f"{record['n_pairs']} of {record['settings']['n_pairs']} pairs converged; "
          f"{record['n_train_pairs']} train / {record['n_test_pairs']} test pairs; mean |E+ - E-| / 2 of the test "
          f"pairs {record['mean_half_difference_mha']:.2f} mHa (all pairs: mean |dE| "
          f"{record['all_pairs_mean_abs_difference_mha']:.2f} mHa)")
    print("| features | energy MAE (mHa) | E+ - E- MAE (mHa) | width | alpha |\n|---|---|---|---|---|")
    for name in ("nu=3", "triplets"):
        r = record[name]
        print(f"| {name} | {r['energy_mae_mha']:.2f} | {r['difference_mae_mha']:.2f} | {r['width']} | {r['alpha']:.0e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-pairs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--basis", default="sto-3g")
    parser.add_argument("--max-radial", type=int, default=3)
    parser.add_argument("--max-angular", type=int, default=3)
    parser.add_argument("--components", type=int, default=64, help="principal components of the feature rows")
    parser.add_argument("--cache-dir", type=Path, default=Path(".nhamil-cache/plus_minus"))
    parser.add_argument("--n-workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    record = run(args)
    with atomic_path(RESULTS / "plus_minus.json") as temporary:
        Path(temporary).write_text(json.dumps(record, indent=2) + "\n")
    report(record)


if __name__ == "__main__":
    main()
