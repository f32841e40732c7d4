"""Prediction memory and time against molecule size, water clusters of 10 to 1,000 atoms.

    python benchmarks/prediction_memory.py [--sizes 10 30 100 300 1000] [--all-pairs-up-to 100]

A def2-SVP AO Fock model (target ``fock``, ridge heads, the default features: 4 Å density cutoff,
max_radial 8, max_angular 6) is fitted on 24 small water clusters (2-4 molecules) against RANDOM
symmetric targets: memory and time do not depend on the values, only on the basis, the features
and the pairs. It is fitted twice, with the pair cutoff at the density cutoff (4 Å: pairs
farther apart have all-zero pair features) and without one (every pair, as before the cutoff).
Water clusters are molecules on a cubic grid of 3.1 Å (liquid density), randomly turned.

Each size is predicted in a fresh subprocess (``python prediction_memory.py --child ...``) after a
warm-up on a 3-molecule cluster; reported: the peak resident memory of that process (VmHWM of
/proc/self/status, which sees torch's allocations, unlike tracemalloc), the memory before the
prediction (imports, model), the prediction's wall time and time per atom, the pairs featurized
and the AOs. Ratios: time per atom against the smallest size, and the pair-cutoff path against
the all-pairs path in the same run (named baseline: ``pair_cutoff=None``, every pair, in chunks).
Results go to stdout as a Markdown table; record them in benchmarks/results/prediction_memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ase
import numpy as np

SPACING = 3.1  # Å between water molecules: about 1 g/cm^3
WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])  # Å
CACHE = Path(os.environ.get("NHAMIL_BENCH_CACHE", "/work/cache/predict"))


def water_cluster(n_molecules: int, seed: int = 0) -> ase.Atoms:
    """``n_molecules`` waters on the first points of a cubic grid of side ``SPACING`` (Å), nearest
    the origin first, each randomly turned and shifted by up to 0.2 Å."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3))) + 1
    grid = np.stack(np.meshgrid(*3 * [np.arange(side)], indexing="ij"), -1).reshape(-1, 3) * SPACING
    grid = grid[np.argsort(np.linalg.norm(grid - grid.mean(0), axis=1), kind="stable")][:n_molecules]
    positions = []
    for centre in grid:
        turn, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        positions.append(WATER @ turn.T + centre + rng.uniform(-0.2, 0.2, size=3))
    return ase.Atoms("OH2" * n_molecules, np.concatenate(positions))


def fit_models() -> dict[str, Path]:
    """The two models (pair cutoff at the density cutoff, and none), fitted once and cached."""
    import torch

    from nhamil.model import FeatureSettings, HamiltonianModel
    from nhamil.orbitals import AtomicBasis

    CACHE.mkdir(parents=True, exist_ok=True)
    paths = {name: CACHE / f"memory_{name}.pt" for name in ("cutoff", "all_pairs")}
    if all(path.exists() for path in paths.values()):
        return paths
    basis = AtomicBasis.from_pyscf("def2-svp", [1, 8])
    frames = [water_cluster(2 + k % 3, seed=100 + k) for k in range(24)]
    rng = np.random.default_rng(0)
    targets = []
    for atoms in frames:
        n = basis.n_ao(atoms.numbers)
        noise = rng.normal(size=(n, n))
        targets.append(torch.as_tensor(noise + noise.T))
    features = FeatureSettings()
    for name, cutoff in (("cutoff", features.density.cutoff), ("all_pairs", None)):
        model = HamiltonianModel(basis, [1, 8], target="fock", features=features, pair_cutoff=cutoff)
        model.fit(frames, targets, progress=False).save(paths[name])
    return paths


def _status(field: str) -> float:
    """A memory field of /proc/self/status, GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024**2
    raise KeyError(field)


def child(model_path: str, n_molecules: int) -> dict:
    """Predict one cluster in this (fresh) process; the numbers as a dict."""
    from nhamil.model import HamiltonianModel, pairs_within

    model = HamiltonianModel.load(model_path)
    model.predict([water_cluster(3, seed=1)], check_domain=False)  # warm-up: caches, first-call costs
    atoms = water_cluster(n_molecules)
    before = _status("VmRSS")
    start = time.perf_counter()
    (matrix,) = model.predict([atoms], check_domain=False)
    seconds = time.perf_counter() - start
    n = len(atoms)
    pairs = n * (n - 1) // 2 if model.pair_cutoff is None else len(pairs_within(atoms.positions, model.pair_cutoff))
    return {
        "atoms": n,
        "n_ao": int(matrix.shape[0]),
        "pairs": pairs,
        "seconds": seconds,
        "ms_per_atom": 1e3 * seconds / n,
        "rss_before_gb": before,
        "peak_gb": _status("VmHWM"),
        "matrix_gb": matrix.numel() * 8 / 1024**3,
    }


def run_child(model_path: Path, n_molecules: int) -> dict:
    command = [sys.executable, __file__, "--child", str(model_path), str(n_molecules)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100, 300, 1000], help="atoms (about)")
    parser.add_argument("--all-pairs-up-to", type=int, default=100, help="largest size run without the cutoff")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    paths = fit_models()
    rows = []
    for size in args.sizes:
        molecules = max(1, round(size / 3))
        for name in ("cutoff", "all_pairs"):
            if name == "all_pairs" and size > args.all_pairs_up_to:
                continue
            rows.append({"model": name, **run_child(paths[name], molecules)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    first = next(row for row in rows if row["model"] == "cutoff")
    all_pairs = {row["atoms"]: row for row in rows if row["model"] == "all_pairs"}
    print(
        "| model | atoms | AOs | pairs | time (s) | ms/atom | ms/atom vs smallest | ms/pair | peak RSS (GB) "
        "| RSS before (GB) | dense matrix (GB) | time vs all pairs | peak vs all pairs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        other = all_pairs.get(row["atoms"])
        versus = (
            f"{row['seconds'] / other['seconds']:.2f} | {row['peak_gb'] / other['peak_gb']:.2f}"
            if other is not None and row["model"] == "cutoff"
            else "- | -"
        )
        print(
            f"| {row['model']} | {row['atoms']} | {row['n_ao']} | {row['pairs']} | {row['seconds']:.2f} "
            f"| {row['ms_per_atom']:.1f} | {row['ms_per_atom'] / first['ms_per_atom']:.2f} "
            f"| {1e3 * row['seconds'] / row['pairs']:.1f} | {row['peak_gb']:.2f} "
            f"| {row['rss_before_gb']:.2f} | {row['matrix_gb']:.3f} | {versus} |"
        )


if __name__ == "__main__":
    main()
