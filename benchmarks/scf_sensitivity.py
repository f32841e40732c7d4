"""How good must a predicted Fock matrix be to save SCF cycles? Exact Fock plus noise as guesses.

    OPENBLAS_NUM_THREADS=1 python benchmarks/scf_sensitivity.py --molecule ethanol

For each held-out frame (the last ``--n-test`` of the file), the converged RHF/def2-SVP Fock
matrix (Löwdin-orthogonal, from the reference cache) plus symmetric Gaussian noise of standard
deviation sigma on every element is turned into a start density, as a model's prediction
would be (``nhamil.scf_guess``), and PySCF converges from it at its default ``conv_tol``. The
cycles against sigma show what error a model needs for a given saving; minao is the baseline.
Noise is uncorrelated, unlike a model's errors, so this is a guide, not a bound.

Writes ``benchmarks/results/scf_sensitivity_<molecule>.json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import numpy as np
from scf_guess import DATA, FILES
from tqdm import tqdm

from nhamil.atomic import atomic_path
from nhamil.evaluate import density_matrix, orbitals_from_orthogonal, to_pyscf_order
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, lowdin_orthogonalize, read_frames
from nhamil.scf_guess import run_from_guess

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIGMAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)


def noisy_density(
    fock: np.ndarray,
    overlap: np.ndarray,
    sigma: float,
    n_occupied: int,
    atoms,
    basis: AtomicBasis,
    rng: np.random.Generator,
) -> np.ndarray:
    """PySCF-order closed-shell density of ``fock`` (orthogonal, Hartree) plus symmetric noise whose
    elements have standard deviation ``sigma`` (Hartree)."""
    noise = rng.normal(scale=sigma, size=fock.shape)
    orbitals = orbitals_from_orthogonal(fock + (noise + noise.T) / np.sqrt(2), overlap, n_occupied)
    return to_pyscf_order(density_matrix(orbitals), basis, atoms.numbers)


def cycles_against_noise(frames, records, settings: ScfSettings, seed: int) -> dict[str, list[int]]:
    """Cycles per frame from each noise level (keys ``str(sigma)``) and from minao."""
    rng = np.random.default_rng(seed)
    basis = AtomicBasis.from_pyscf(settings.basis, sorted({int(z) for a in frames for z in a.numbers}))
    cycles: dict[str, list[int]] = {str(sigma): [] for sigma in SIGMAS} | {"minao": []}
    for atoms, record in tqdm(list(zip(frames, records, strict=True)), desc="SCF from noisy Fock", unit="structure"):
        fock, n_occupied = lowdin_orthogonalize(record.fock, record.overlap), record.n_occupied
        for sigma in SIGMAS:
            density = noisy_density(fock, record.overlap, sigma, n_occupied, atoms, basis, rng)
            cycles[str(sigma)].append(run_from_guess(atoms, settings, density).n_cycles)
        cycles["minao"].append(run_from_guess(atoms, settings, "minao").n_cycles)
    return cycles


def plot(cycles: dict[str, list[int]], title: str, path: Path) -> None:
    """Mean cycles against sigma (log axis; sigma = 0 drawn at the left edge), minao and half of it."""
    sigmas = [max(sigma, SIGMAS[1] / 3) for sigma in SIGMAS]
    means = [np.mean(cycles[str(sigma)]) for sigma in SIGMAS]
    minao = np.mean(cycles["minao"])
    figure, axis = plt.subplots(figsize=(5, 3.5))
    axis.semilogx(sigmas, means, "o-", label="exact Fock + noise")
    axis.annotate("no noise", (sigmas[0], means[0]), textcoords="offset points", xytext=(6, -3))
    axis.axhline(minao, color="gray", label=f"minao ({minao:.2f})")
    axis.axhline(minao / 2, color="gray", linestyle="--", label="half of minao")
    axis.set(xlabel="noise per matrix element, sigma (Ha)", ylabel="SCF cycles (mean)", title=title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecule", choices=sorted(FILES), default="ethanol")
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--conv-tol", type=float, default=1e-9, help="SCF energy threshold (Hartree), PySCF's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=".nhamil-cache")
    args = parser.parse_args()
    frames = read_frames(DATA / FILES[args.molecule])[-args.n_test :]
    records = build_reference_set(frames, ScfSettings(), ProjectionSettings(), args.cache_dir, n_workers=1)
    cycles = cycles_against_noise(frames, records, ScfSettings(conv_tol=args.conv_tol), args.seed)
    RESULTS.mkdir(exist_ok=True)
    with atomic_path(RESULTS / f"scf_sensitivity_{args.molecule}.json") as temporary:
        temporary.write_text(
            json.dumps({"molecule": args.molecule, "conv_tol": args.conv_tol, "cycles": cycles}, indent=2) + "\n"
        )
    plot(cycles, f"{args.molecule}, RHF/def2-SVP", RESULTS / f"scf_sensitivity_{args.molecule}.png")
    print("| sigma (Ha) | cycles mean | saved vs minao |\n|---|---|---|")
    minao = np.mean(cycles["minao"])
    for name, values in cycles.items():
        print(f"| {name} | {np.mean(values):.2f} | {1 - np.mean(values) / minao:.0%} |")


if __name__ == "__main__":
    main()
