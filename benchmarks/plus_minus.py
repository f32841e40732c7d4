"""+/- pairs: a model on the centre's nu = 3 invariants against the same model on triplet features.

    OPENBLAS_NUM_THREADS=1 python benchmarks/plus_minus.py

1. Draws ``--n-pairs`` random +/- pairs (``nhamil.features.plus_minus``: a carbon centre, two
   rings of three H turned against each other, an O cap above or below; CH6O; random ring
   shape and twist, bond lengths within ``RANGES``) and computes their RHF/STO-3G energies with
   PySCF, the lowest over the start guesses ``START_GUESSES`` (cached under ``--cache-dir``,
   resumable); pairs with a member that no start converged are dropped.
2. Splits by pair (``--train-fraction`` of the pairs for training, the rest for testing).
3. Fits one regressor twice: kernel ridge with the Gaussian kernel of a set distance,
   K(A, B) = exp(-|psi(A) - psi(B)|^2 / (2 s^2)), where psi is the mean embedding of the set
   kernel k(A, B) = sum_{a in A, b in B, same elements} exp(-|x_a - x_b|^2 / (2 w^2)) (so that
   |psi(A) - psi(B)|^2 = k(A, A) + k(B, B) - 2 k(A, B)), computed by Nystroem on ``--landmarks``
   training rows; w, s and the regularization by 5-fold cross-validation over training pairs,
   rows x reduced by PCA (``--components``, fitted on training rows). (a) nu = 3: each
   structure's set is the one nu = 3 invariant vector of its carbon; (b) triplets: the set of
   pair-symmetrized triplet invariants of the carbon, one row per pair of its neighbours.
4. Prints the test MAE of the energies, the mean half difference |E+ - E-| / 2 of the test pairs
   and the MAE of the predicted difference E+ - E-; writes ``benchmarks/results/plus_minus.json``
   and ``benchmarks/results/plus_minus.png``.

Since the nu = 3 invariants of the two members are equal, model (a) predicts the same energy for
both: its error cannot fall below about |E+ - E-| / 2, and its predicted difference is zero (the
largest one it predicts is recorded). Model (b) is not a sum over triplets: a sum of functions
of single triplets is the additive set kernel k itself, which on the same data reaches 3.9 mHa
and 5.4 mHa on E+ - E- against 2.9 and 3.1 mHa (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from kernel_ridge import gaussian, ridge_errors, ridge_solve
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.features import DensitySettings
from nhamil.features.plus_minus import CentreInvariants, GeometryRanges, centre_invariants, random_geometries
from nhamil.reference import ScfSettings
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.reference.store import geometry_hash

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPECIES = (1, 6, 8)
INNER_WIDTHS = (0.25, 0.5, 1.0)  # widths w of the row kernel, in units of the median row distance
OUTER_WIDTHS = (0.5, 1.0, 2.0, 4.0)  # widths s of the structure kernel, units of the median embedding distance
ALPHAS = tuple(10.0**k for k in range(-10, 1))  # regularization, relative to the kernel's mean diagonal
EIGENVALUE_FLOOR = 1e-10  # landmark kernel eigenvalues below this fraction of the largest are dropped
#: Bond lengths vary by a few per cent only: most of the energy's spread then comes from the ring
#: shape and the twist, which also set E+ - E-. With the generator's wide default ranges the
#: pair means spread over 70 mHa (std) against 30 mHa mean |E+ - E-|, and 450 training pairs
#: learn them to about 14 mHa.
RANGES = GeometryRanges(radius=(1.15, 1.2), height=(0.5, 0.55), cap=(1.4, 1.45))
MILLI = 1000.0
#: PySCF start guesses. Several RHF solutions exist for some of these frames: from "minao" alone,
#: about 4 % of the frames land 2-60 mHa above the lowest solution that the others find, noise
#: as large as E+ - E- itself.
START_GUESSES = ("minao", "atom", "huckel", "1e")


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
    """Frames (plus, minus, plus, minus, ...) and (n_kept, 2) lowest RHF energies (Hartree) of
    the pairs whose two members have at least one converged SCF run."""
    frames = [atoms for geometry in random_geometries(n_pairs, seed, RANGES) for atoms in geometry.pair()]
    energies = cached_energies(
        frames, ScfSettings(method="rhf", basis=args.basis), args.cache_dir / f"lowest_rhf_{args.basis}", args.n_workers
    ).reshape(-1, 2)
    converged = np.isfinite(energies).all(axis=1)
    kept = np.repeat(converged, 2)
    return [atoms for atoms, keep in zip(frames, kept, strict=True) if keep], energies[converged]


def cached_energies(frames: list, scf: ScfSettings, folder: Path, n_workers: int) -> np.ndarray:
    """(n_frames,) :func:`lowest_energy` of every frame, Hartree, each stored in ``folder`` as
    soon as it is computed (a JSON file named by the geometry's hash) and read from there later."""
    paths = [folder / f"{geometry_hash(atoms.numbers, atoms.positions)}.json" for atoms in frames]
    missing = [(atoms, path) for atoms, path in zip(frames, paths, strict=True) if not path.exists()]
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = pool.map(_store_lowest_energy, *zip(*missing, strict=True), [scf] * len(missing)) if missing else []
        for _ in tqdm(jobs, total=len(missing), desc="RHF energies", unit="frame"):
            pass
    return np.array([json.loads(path.read_text())["e_tot"] for path in paths])


def _store_lowest_energy(atoms, path: Path, scf: ScfSettings) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps({"e_tot": lowest_energy(atoms, scf)}))


def lowest_energy(atoms, scf: ScfSettings) -> float:
    """The lowest converged SCF energy (Hartree) of ``atoms`` over the PySCF start guesses
    ``START_GUESSES``, NaN if none converged. One thread."""
    from pyscf import lib

    lib.num_threads(1)
    energies = []
    for guess in START_GUESSES:
        solver = make_solver(build_molecule(atoms, scf), scf)
        solver.init_guess = guess
        energy = solver.kernel()
        if solver.converged:
            energies.append(float(energy))
    return min(energies, default=float("nan"))


def feature_rows(frames: list, settings: DensitySettings, chunk: int = 50) -> tuple[Rows, Rows]:
    """(nu = 3 rows, one per structure; pair-symmetrized triplet rows) of atom 0 of every frame."""
    parts = [
        centre_invariants(frames[start : start + chunk], SPECIES, settings)
        for start in tqdm(range(0, len(frames), chunk), desc="features", unit="chunk")
    ]
    offsets = np.cumsum([0] + [len(part.nu3) for part in parts[:-1]])
    invariants = CentreInvariants(
        torch.cat([p.nu3 for p in parts]),
        torch.cat([p.pairs for p in parts]),
        torch.cat([p.pair_structure + int(o) for p, o in zip(parts, offsets, strict=True)]),
        torch.cat([p.pair_elements for p in parts]),
    )
    n = len(frames)
    nu3 = Rows(invariants.nu3, torch.arange(n), torch.zeros(n, dtype=torch.long), n)
    labels = invariants.pair_elements[:, 0] * 1000 + invariants.pair_elements[:, 1]
    return nu3, Rows(invariants.pairs, invariants.pair_structure, labels, n)


def reduce_rows(train: Rows, test: Rows, components: int) -> tuple[Rows, Rows, float]:
    """Both row sets projected on the ``components`` principal axes of the training rows, and the
    median distance between training rows (the unit of the inner Gaussian widths)."""
    mean = train.rows.mean(dim=0)
    _, _, axes = torch.pca_lowrank(train.rows - mean, q=min(components, *train.rows.shape), center=False, niter=4)
    project = lambda rows: Rows((rows.rows - mean) @ axes, rows.structure, rows.labels, rows.n)  # noqa: E731
    reduced_train = project(train)
    return reduced_train, project(test), median_distance(reduced_train.rows)


def median_distance(points: torch.Tensor, sample: int = 2000) -> float:
    """Median distance between ``sample`` seeded random points of (n, d) ``points``."""
    chosen = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:sample]
    return float(torch.pdist(points[chosen]).median())


def landmark_rows(train: Rows, n_landmarks: int) -> dict[int, torch.Tensor]:
    """Seeded random training rows per label, about ``n_landmarks`` in all, in proportion to
    the labels' row counts: label -> (m, d)."""
    generator = torch.Generator().manual_seed(0)
    landmarks = {}
    for label in train.labels.unique().tolist():
        rows = train.rows[train.labels == label]
        count = max(1, round(n_landmarks * len(rows) / len(train.rows)))
        landmarks[label] = rows[torch.randperm(len(rows), generator=generator)[:count]]
    return landmarks


def mean_embeddings(rows: Rows, landmarks: dict[int, torch.Tensor], width: float) -> torch.Tensor:
    """(rows.n, r) Nystroem features of the set kernel K(A, B) = sum over rows a of A, b of B
    with equal labels of exp(-|x_a - x_b|^2 / (2 w^2)): psi(A) psi(B)^T approximates K(A, B),
    exactly where all rows of A and B are landmarks. Invariant under any permutation of a set's rows."""
    sums, whitening = [], []
    for label, points in landmarks.items():
        same = rows.labels == label
        summed = torch.zeros(rows.n, len(points), dtype=rows.rows.dtype)
        sums.append(summed.index_add_(0, rows.structure[same], gaussian(rows.rows[same], points, width)))
        values, vectors = torch.linalg.eigh(gaussian(points, points, width))
        kept = values > values.max() * EIGENVALUE_FLOOR
        whitening.append(vectors[:, kept] / values[kept].sqrt())
    return torch.cat([summed @ whiten for summed, whiten in zip(sums, whitening, strict=True)], dim=1)


def fit_predict(train: Rows, test: Rows, targets: torch.Tensor, folds: list[torch.Tensor], args) -> dict:
    """Cross-validated kernel ridge on ``train`` (targets (train.n,), Hartree) with the
    Gaussian kernel of the distance between mean embeddings, exp(-|psi(A) - psi(B)|^2 / (2 s^2));
    predictions for ``test`` (test.n,) and the chosen hyperparameters (inner width w, outer
    width s, in units of the median distances, and alpha)."""
    train, test, unit = reduce_rows(train, test, args.components)
    landmarks = landmark_rows(train, args.landmarks)
    best = select_widths(train, landmarks, unit, targets, folds)
    embedded = mean_embeddings(train, landmarks, best["width"] * unit)
    kernel = gaussian(embedded, embedded, best["outer"])
    weights = ridge_solve(kernel, targets - targets.mean(), best["alpha"])
    prediction = gaussian(mean_embeddings(test, landmarks, best["width"] * unit), embedded, best["outer"]) @ weights
    return best | {"prediction": prediction + targets.mean()}


def select_widths(
    train: Rows, landmarks: dict[int, torch.Tensor], unit: float, targets: torch.Tensor, folds: list[torch.Tensor]
) -> dict:
    """The hyperparameters of ``INNER_WIDTHS`` x ``OUTER_WIDTHS`` x ``ALPHAS`` with the lowest
    summed absolute validation error: inner width w / ``unit`` ("width"), outer width s (as used,
    "outer", and relative to the median embedding distance, "outer_width"), "alpha", "error" (Ha)."""
    best = {"error": float("inf")}
    for inner in tqdm(INNER_WIDTHS, desc="widths", unit="width", leave=False):
        embedded = mean_embeddings(train, landmarks, inner * unit)
        squared = torch.cdist(embedded, embedded).square()
        outer_unit = float(squared[squared > 0].sqrt().median())
        for outer in OUTER_WIDTHS:
            errors = ridge_errors(torch.exp(-squared / (2 * (outer * outer_unit) ** 2)), targets, folds, ALPHAS)
            if float(errors.min()) < best["error"]:
                best = {
                    "error": float(errors.min()),
                    "width": inner,
                    "outer": outer * outer_unit,
                    "outer_width": outer,
                    "alpha": ALPHAS[int(errors.argmin())],
                }
    return best


def pair_folds(n_pairs: int, n_folds: int, seed: int) -> list[torch.Tensor]:
    """Validation structures of each fold: both members of every pair in it (structures 2p, 2p + 1)."""
    order = torch.randperm(n_pairs, generator=torch.Generator().manual_seed(seed))
    return [torch.stack([2 * pairs, 2 * pairs + 1], dim=1).flatten() for pairs in order.chunk(n_folds)]


def pair_metrics(prediction: torch.Tensor, reference: torch.Tensor) -> dict:
    """mHa errors of (n_pairs * 2,) predictions, members of a pair adjacent."""
    predicted_difference = prediction[0::2] - prediction[1::2]
    difference = predicted_difference - (reference[0::2] - reference[1::2])
    return {
        "energy_mae_mha": MILLI * float((prediction - reference).abs().mean()),
        "difference_mae_mha": MILLI * float(difference.abs().mean()),
        "largest_predicted_difference_mha": MILLI * float(predicted_difference.abs().max()),
    }


def plot(reference: np.ndarray, predictions: dict[str, np.ndarray], path: Path) -> None:
    """Predicted against reference energies and +/- differences, one colour per model, mHa."""
    figure, (energies, differences) = plt.subplots(1, 2, figsize=(10, 4.5))
    offset = reference.mean()
    for name, prediction in predictions.items():
        energies.scatter(MILLI * (reference - offset), MILLI * (prediction - offset), s=8, label=name)
        differences.scatter(
            MILLI * (reference[0::2] - reference[1::2]), MILLI * (prediction[0::2] - prediction[1::2]), s=8, label=name
        )
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
    structures = {
        name: torch.stack([2 * p, 2 * p + 1], dim=1).flatten()
        for name, p in (("train", order[:n_train]), ("test", order[n_train:]))
    }
    targets = torch.as_tensor(energies.reshape(-1))
    settings = DensitySettings(max_radial=args.max_radial, max_angular=args.max_angular)
    folds = pair_folds(n_train, 5, args.seed)
    reference = targets[structures["test"]]
    record = {
        "n_pairs": n_pairs,
        "n_train_pairs": n_train,
        "n_test_pairs": n_pairs - n_train,
        "mean_half_difference_mha": MILLI * float((reference[0::2] - reference[1::2]).abs().mean() / 2),
        "all_pairs_mean_abs_difference_mha": MILLI * float(np.abs(energies[:, 0] - energies[:, 1]).mean()),
        "settings": vars(args) | {"cache_dir": str(args.cache_dir)},
    }
    predictions = {}
    for name, rows in zip(("nu=3", "triplets"), feature_rows(frames, settings), strict=True):
        fit = fit_predict(
            rows.subset(structures["train"]), rows.subset(structures["test"]), targets[structures["train"]], folds, args
        )
        predictions[name] = fit["prediction"].numpy()
        record[name] = pair_metrics(fit["prediction"], reference) | {
            key: fit[key] for key in ("width", "outer_width", "alpha")
        }
    plot(reference.numpy(), predictions, RESULTS / "plus_minus.png")
    return record


def report(record: dict) -> None:
    """A Markdown table of the record."""
    print(
        f"{record['n_pairs']} of {record['settings']['n_pairs']} pairs converged; "
        f"{record['n_train_pairs']} train / {record['n_test_pairs']} test pairs; mean |E+ - E-| / 2 of the test "
        f"pairs {record['mean_half_difference_mha']:.2f} mHa (all pairs: mean |dE| "
        f"{record['all_pairs_mean_abs_difference_mha']:.2f} mHa)"
    )
    print(
        "| features | energy MAE (mHa) | E+ - E- MAE (mHa) | largest predicted |E+ - E-| (mHa) | w | s | alpha |\n"
        "|---|---|---|---|---|---|---|"
    )
    for name in ("nu=3", "triplets"):
        r = record[name]
        print(
            f"| {name} | {r['energy_mae_mha']:.2f} | {r['difference_mae_mha']:.2f} | "
            f"{r['largest_predicted_difference_mha']:.1e} | {r['width']} | {r['outer_width']} | {r['alpha']:.0e} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-pairs", type=int, default=1600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.8)
    parser.add_argument("--basis", default="sto-3g")
    parser.add_argument("--max-radial", type=int, default=3)
    parser.add_argument("--max-angular", type=int, default=3)
    parser.add_argument("--components", type=int, default=64, help="principal components of the feature rows")
    parser.add_argument("--landmarks", type=int, default=2000, help="landmark rows of the Nystroem set kernel")
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
