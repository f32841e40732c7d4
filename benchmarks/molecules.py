"""The molecules experiment (SMILES -> 3D -> references -> models): build costs and references.

    python benchmarks/molecules.py timing --molecules 6      # s per molecule: DF-RHF vs B3LYP/def2-SVP
    python benchmarks/molecules.py build 0:100 200:300 ...   # references of these frames, in order

Both read ``+experiment=molecules`` (extra Hydra overrides after ``--``), with
``data.cache_dir`` from ``NHAMIL_CACHE_DIR``. ``timing`` runs single points, single-threaded, of the
first molecules of the test split at the experiment's level (density-fitted RHF/def2-SVP) and at
QH9's (B3LYP/def2-SVP), and prints seconds per molecule and their ratio (B3LYP the baseline).
``build`` fills the reference cache that the training run reads, frame ranges of the in-size file
first and ``x:START:STOP`` ranges of the extrapolation file, one range after the other, so that an
interrupted build leaves whole ranges.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from nhamil.config import compose_config
from nhamil.evaluate import scf_settings
from nhamil.reference import read_frames
from nhamil.reference.scf import run_scf
from nhamil.sources import heavy_atom_counts
from nhamil.train import reference_records, target_from_config


def timing(cfg, n_molecules: int) -> None:
    """Seconds per SCF at the run's level and at B3LYP/def2-SVP for ``n_molecules`` test molecules."""
    frames = read_frames(cfg.data.frames)[cfg.split.test[0] : cfg.split.test[0] + n_molecules]
    levels = {"run level": scf_settings(cfg), "B3LYP/def2-SVP": scf_settings(cfg).__class__(method="rks", xc="b3lyp")}
    seconds = {name: [] for name in levels}
    for atoms in frames:
        for name, settings in levels.items():
            start = time.perf_counter()
            run_scf(atoms, settings)
            seconds[name].append(time.perf_counter() - start)
        heavy = heavy_atom_counts([atoms])[0]
        print(
            f"{atoms.info.get('smiles')}: {heavy} heavy, {len(atoms)} atoms, "
            + ", ".join(f"{name} {s[-1]:.2f} s" for name, s in seconds.items()),
            flush=True,
        )
    run, b3lyp = (float(np.mean(s)) for s in seconds.values())
    print(f"mean s/molecule: run level {run:.2f}, B3LYP/def2-SVP {b3lyp:.2f}; B3LYP / run level = {b3lyp / run:.2f}")


def build(cfg, ranges: list[str]) -> None:
    """References of the frame ranges ``START:STOP`` (in-size file) and ``x:START:STOP``
    (extrapolation file), into the run's cache, each range timed."""
    target = target_from_config(cfg)
    files = {"": read_frames(cfg.data.frames), "x": read_frames(cfg.data.extrapolation_frames)}
    for text in ranges:
        which, start, stop = text.split(":") if text.startswith("x:") else ("", *text.split(":"))
        frames = files[which]
        used = list(range(int(start), min(int(stop), len(frames))))
        began = time.perf_counter()
        reference_records(cfg, frames, used, target)
        seconds = time.perf_counter() - began
        print(f"range {text}: {len(used)} molecules in {seconds:.0f} s ({seconds / len(used):.2f} s each)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("timing", "build"))
    parser.add_argument("ranges", nargs="*", help="build: START:STOP or x:START:STOP frame ranges")
    parser.add_argument("--molecules", type=int, default=6, help="timing: how many test molecules")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides of +experiment=molecules")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = compose_config(["+experiment=molecules", "data.n_workers=1", *args.overrides])
    timing(cfg, args.molecules) if args.command == "timing" else build(cfg, args.ranges)


if __name__ == "__main__":
    main()
