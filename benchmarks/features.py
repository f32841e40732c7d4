"""nhamil's features against featomic, the field's reference implementation, at matched settings.

Run from the repository root (needs ``pip install featomic``, which brings metatensor-core):

    python benchmarks/features.py [--repeats 5] [--threads 1] [--data ...] [--calculations ...]

Three calculations: the density expansion rho_i, the nu = 2 equivariant features (lam <= l_max,
both parities) and the pair expansion g_ij of every pair within the cutoff. Data sets: 100 water
and 100 ethanol frames and the 100 QM7 molecules shipped in nhamil/data, and a size
series of water clusters (liquid density, 9 to 300 atoms). Each (data set, calculation,
implementation) runs in a fresh subprocess: the peak resident memory above the level before the
first call, sampled during the first two calls (set-up, then warm), then the median wall time of
``--repeats`` further calls with the sampler stopped (its 1 ms wake-ups took the GIL and made
sub-millisecond calls 28-43 % slower, nhamil's more than featomic's).
Also checks that both compute the same physics: the lam = 0 power-spectrum kernel between the
QM7 molecules from each, correlated. Prints the tables; ``--json`` writes them too.

Normalizations. nhamil runs with ``radial_domain="unbounded"``, featomic's radial convention:
GTOs r^n exp(-r^2 / (2 s_n^2)), s_n = cutoff max(sqrt n, 1) / n_radial, Löwdin-orthonormalized
on [0, inf), each neighbour's Gaussian projected over all space (nhamil's default projects within
the cutoff ball on GTOs orthonormal there; the kernel is reported for both). featomic's Gaussian
has unit L2 norm, nhamil's unit integral: its coefficients are nhamil's times
2^(3/2) (pi sigma^2)^(3/4) (1.097 at sigma = 0.3 Å), a factor the normalized kernel ignores. Both
include the central atom's own density (weight 1, l = 0) and use orthonormal real harmonics.
Power spectrum: nhamil couples to lam = 0 with +1/sqrt(2l + 1), featomic with (-1)^l/sqrt(2l + 1)
(a sign per feature: the kernel is unchanged); featomic keeps a neighbour-type pair a < b once,
scaled by sqrt(2), nhamil both orders: the same dot products. Both sum per centre type.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import ase
import ase.build
import ase.io
import numpy as np
from timing import median_seconds

from nhamil.data import data_file

CUTOFF, CUTOFF_WIDTH, GAUSSIAN_WIDTH, MAX_RADIAL, MAX_ANGULAR = 4.0, 0.5, 0.3, 8, 4
CALCULATIONS = ("rho", "nu2", "pairs")
CLUSTER_SIZES = (3, 10, 33, 100)  # water molecules: 9 to 300 atoms
BATCHES = ("water", "ethanol", "qm7")
CLUSTERS = tuple(f"cluster-{n}" for n in CLUSTER_SIZES)
RADIAL_DOMAINS = ("unbounded", "cutoff")


def data_set(name: str) -> list[ase.Atoms]:
    """The frames of a data set by name: water, ethanol, qm7, or cluster-N (N water molecules)."""
    if name.startswith("cluster-"):
        return [water_cluster(int(name.split("-")[1]), seed=0)]
    files = {"water": "water_coords_1000.xyz", "ethanol": "ethanol-structures.xyz", "qm7": "qm7-example-structure.xyz"}
    frames = ase.io.read(data_file(files[name]), ":100")
    for atoms in frames:  # molecules: some files say pbc with a zero cell, which featomic refuses
        atoms.pbc = False
    return frames


def water_cluster(n_molecules: int, *, seed: int) -> ase.Atoms:
    """n water molecules, randomly oriented, on a cubic grid of 3.1 Å (about liquid density)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    sites = 3.1 * np.array(list(np.ndindex(side, side, side))[:n_molecules], dtype=float)
    monomer = ase.build.molecule("H2O")
    cluster = ase.Atoms()
    for site in sites:
        molecule = monomer.copy()
        molecule.rotate(rng.uniform(0, 360), rng.normal(size=3))
        molecule.translate(site + rng.normal(scale=0.1, size=3))
        cluster += molecule
    return cluster


def featomic_hypers() -> dict:
    """featomic's spelling of the shared settings (its max_radial is the highest index n)."""
    return {
        "cutoff": {"radius": CUTOFF, "smoothing": {"type": "ShiftedCosine", "width": CUTOFF_WIDTH}},
        "density": {"type": "Gaussian", "width": GAUSSIAN_WIDTH},
        "basis": {
            "type": "TensorProduct",
            "max_angular": MAX_ANGULAR,
            "radial": {"type": "Gto", "max_radial": MAX_RADIAL - 1},
        },
    }


def nhamil_settings(radial_domain: str = "unbounded"):
    """nhamil's spelling of the shared settings; by default in featomic's radial convention (GTOs
    orthonormal on [0, inf), densities projected over all space), nhamil's default is "cutoff"."""
    from nhamil.features import DensitySettings

    return DensitySettings(
        cutoff=CUTOFF,
        cutoff_width=CUTOFF_WIDTH,
        gaussian_width=GAUSSIAN_WIDTH,
        max_radial=MAX_RADIAL,
        max_angular=MAX_ANGULAR,
        radial_domain=radial_domain,
    )


def nhamil_calculation(frames: list[ase.Atoms], calculation: str):
    """A no-argument callable computing ``calculation`` for ``frames`` with nhamil."""
    import torch

    from nhamil.features import atom_centered_features, density_expansion, neighbor_pairs, pair_density
    from nhamil.structures import Structures

    settings = nhamil_settings()
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})

    def run():
        structures = Structures.from_atoms(frames)
        if calculation == "rho":
            return density_expansion(structures, species, settings)
        if calculation == "nu2":
            return atom_centered_features(structures, species, settings, max_lambda=MAX_ANGULAR, correlation_order=2)
        first, second = neighbor_pairs(structures, CUTOFF)
        start = structures.ptr[structures.system[first]]
        pairs = torch.stack([structures.system[first], first - start, second - start], dim=1)
        return pair_density(structures, pairs, settings)

    return run


def featomic_calculation(frames: list[ase.Atoms], calculation: str):
    """A no-argument callable computing ``calculation`` for ``frames`` with featomic."""
    import featomic
    import featomic.clebsch_gordan
    import metatensor

    hypers = featomic_hypers()  # calculators are built once: their radial splines are set up there
    if calculation == "rho":
        return functools.partial(featomic.SphericalExpansion(**hypers).compute, frames)
    if calculation == "pairs":
        return functools.partial(featomic.SphericalExpansionByPair(**hypers).compute, frames)
    calculator = featomic.clebsch_gordan.EquivariantPowerSpectrum(featomic.SphericalExpansion(**hypers))
    keys = metatensor.Labels(["o3_lambda"], np.arange(MAX_ANGULAR + 1).reshape(-1, 1))
    return lambda: calculator.compute(frames, selected_keys=keys, neighbors_to_properties=True)


def measure(data: str, calculation: str, implementation: str, repeats: int) -> dict:
    """Median seconds per structure and peak memory (MiB above the start) of one calculation."""
    frames = data_set(data)
    make = nhamil_calculation if implementation == "nhamil" else featomic_calculation
    run = make(frames, calculation)
    with PeakMemory() as memory:
        run()
        run()
    median = median_seconds(run, repeats)
    return {
        "seconds_per_structure": median / len(frames),
        "peak_mib": memory.peak_mib,
        "atoms_per_structure": sum(len(a) for a in frames) / len(frames),
    }


class PeakMemory:
    """Peak resident set size, MiB above the level at entry, sampled every millisecond."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = _resident_bytes()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join()
        self.peak_mib = (max(self.peak, _resident_bytes()) - self.start) / 2**20

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, _resident_bytes())
            time.sleep(1e-3)


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def kernel_correlation(frames: list[ase.Atoms], radial_domain: str) -> dict:
    """Pearson correlation of the structure-summed lam = 0 power-spectrum kernels from both codes
    (off-diagonal and diagonal entries of K = P P^T, each K normalized by its largest entry), nhamil
    with ``radial_domain``."""
    kernels = [_nhamil_power_spectrum(frames, radial_domain), _featomic_power_spectrum(frames)]
    kernels = [p @ p.T for p in kernels]
    kernels = [k / k.max() for k in kernels]
    upper = np.triu_indices(len(frames))
    correlation = np.corrcoef(kernels[0][upper], kernels[1][upper])[0, 1]
    return {
        "n_structures": len(frames),
        "radial_domain": radial_domain,
        "pearson": float(correlation),
        "max_abs_difference": float(np.abs(kernels[0] - kernels[1]).max()),
    }


def _nhamil_power_spectrum(frames: list[ase.Atoms], radial_domain: str) -> np.ndarray:
    """(n_structures, n_centre_species * n_features) invariant power spectrum summed over the
    atoms of each centre species of each structure (as featomic's blocks are keyed by centre type).

    rho_i coupled with itself to lam = 0 over all channel pairs (c1, c2): sum_m c1_m c2_m /
    sqrt(2l + 1), like featomic's, and a pair of neighbour species (a, b) with a != b appears
    twice (see :func:`_featomic_power_spectrum`).
    """
    from nhamil.features import couple, density_expansion
    from nhamil.features.density import species_index
    from nhamil.structures import Structures

    species = sorted({int(z) for a in frames for z in a.numbers})
    structures = Structures.from_atoms(frames)
    rho = density_expansion(structures, species, nhamil_settings(radial_domain))
    invariants = couple(rho, rho, max_lambda=0)[0, 1][:, 0]
    slot = structures.system * len(species) + species_index(structures.numbers, species)
    summed = invariants.new_zeros(len(frames) * len(species), invariants.shape[1]).index_add_(0, slot, invariants)
    return summed.reshape(len(frames), -1).numpy()


def _featomic_power_spectrum(frames: list[ase.Atoms]) -> np.ndarray:
    """(n_structures, n_features) featomic's SoapPowerSpectrum summed over the atoms of each
    block (one per centre type and neighbour-type pair a <= b). featomic stores a pair a < b
    once, already scaled by sqrt(2), and couples with (-1)^l / sqrt(2l + 1): a sign per feature,
    which leaves the kernel unchanged, so both kernels weigh every pair alike."""
    import featomic

    spectrum = featomic.SoapPowerSpectrum(**featomic_hypers()).compute(frames)
    columns = []
    for block in spectrum.blocks():
        summed = np.zeros((len(frames), block.values.shape[1]))
        np.add.at(summed, block.samples.column("system"), block.values)
        columns.append(summed)
    return np.concatenate(columns, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and featomic (rayon) threads; 1 by default: on the shared 2-core machine "
        "OpenMP threads waiting on each other made small tensor operations 40x slower",
    )
    parser.add_argument(
        "--data",
        nargs="+",
        choices=BATCHES + CLUSTERS,
        default=BATCHES + CLUSTERS,
        help="data sets to time (all by default)",
    )
    parser.add_argument(
        "--calculations",
        nargs="+",
        choices=CALCULATIONS,
        default=CALCULATIONS,
        help="calculations to time (all by default)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", nargs=3, metavar=("DATA", "CALCULATION", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(*args.child, repeats=args.repeats)))
        return
    rows = [
        run_row(data, calculation, args) for data in BATCHES if data in args.data for calculation in args.calculations
    ]
    rows += [
        run_row(data, calculation, args) for calculation in args.calculations for data in CLUSTERS if data in args.data
    ]
    kernels = [kernel_correlation(data_set("qm7"), domain) for domain in RADIAL_DOMAINS]
    print_tables(rows, kernels)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "kernels": kernels}, indent=2))


def run_row(data: str, calculation: str, args: argparse.Namespace) -> dict:
    """Both implementations of one (data set, calculation), each in its own subprocess."""
    environment = {**os.environ, "RAYON_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    row = {"data": data, "calculation": calculation}
    for implementation in ("nhamil", "featomic"):
        command = [
            sys.executable,
            __file__,
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
            "--child",
            data,
            calculation,
            implementation,
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
        row[implementation] = json.loads(output.strip().splitlines()[-1])
    row["ratio"] = row["nhamil"]["seconds_per_structure"] / row["featomic"]["seconds_per_structure"]
    print(_format(row), flush=True)
    return row


def _format(row: dict) -> str:
    ours, theirs = row["nhamil"], row["featomic"]
    per_atom = 1e6 * ours["seconds_per_structure"] / ours["atoms_per_structure"]
    return (
        f"| {row['data']} | {ours['atoms_per_structure']:.0f} | {row['calculation']} | "
        f"{1e3 * ours['seconds_per_structure']:.2f} | {1e3 * theirs['seconds_per_structure']:.2f} | "
        f"{row['ratio']:.2f} | {per_atom:.0f} | {ours['peak_mib']:.0f} | {theirs['peak_mib']:.0f} |"
    )


def print_tables(rows: list[dict], kernels: list[dict]) -> None:
    print(
        "\n| data | atoms | calculation | nhamil ms/structure | featomic ms/structure | ratio | "
        "nhamil µs/atom | nhamil peak MiB | featomic peak MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(_format(row))
    for kernel in kernels:
        print(
            f"\nlam = 0 power-spectrum kernel over {kernel['n_structures']} QM7 molecules, nhamil radial_domain="
            f"{kernel['radial_domain']}: Pearson 1 - r = {1 - kernel['pearson']:.1e}, "
            f"max |K_nhamil - K_featomic| {kernel['max_abs_difference']:.2e} (K / max K)"
        )


if __name__ == "__main__":
    main()
