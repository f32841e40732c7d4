"""Fine-tuning on 1 and 2 gloo processes: seconds per epoch (from rank 0's ``finetune_log.csv``),
the whole run's wall time, and the 2-process speed-up against the 1-process baseline of the same run.

``OPENBLAS_NUM_THREADS=1 python benchmarks/ddp_finetune.py --cache DIR [--frames 50] [--epochs 5]
[-- OVERRIDES]``: ``torchrun --standalone --nproc-per-node=N -m nhamil.train +experiment=water
+finetune=matrix`` on the first ``--frames`` water frames (5 more to test), reference data in DIR
(computed by the first run, read by the others). One thread per process. Also prints the largest
relative difference of the logged training losses of the two runs (the same steps: round-off).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(n_processes: int, frames: int, epochs: int, cache: str, overrides: list[str], folder: Path):
    """(wall seconds, rows of finetune_log.csv) of one training run on ``n_processes``."""
    arguments = [
        "+experiment=water",
        f"split.train=[0,{frames}]",
        f"split.test=[{frames},{frames + 5}]",
        f"data.cache_dir={cache}",
        "data.n_workers=1",
        "+finetune=matrix",
        f"finetune.epochs={epochs}",
        f"finetune.patience={epochs}",
        f"hydra.run.dir={folder}",
        *overrides,
    ]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([*command, "-m", "nhamil.train", *arguments], env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(folder / "finetune_log.csv") as handle:
        return wall, list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", required=True, help="reference data cache folder")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=5)
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        run(1, args.frames, 1, args.cache, overrides, Path(scratch) / "warm-up")  # fills the reference cache
        for n in (1, 2):
            results[n] = run(n, args.frames, args.epochs, args.cache, overrides, Path(scratch) / f"ranks{n}")
    epoch = {n: sum(float(row["seconds"]) for row in rows) / len(rows) for n, (_, rows) in results.items()}
    for n, (wall, rows) in results.items():
        print(
            f"{n} process(es): {epoch[n]:.2f} s per epoch ({len(rows)} epochs), run {wall:.1f} s; "
            f"speed-up of an epoch against 1 process: {epoch[1] / epoch[n]:.2f}x"
        )
    losses = [[float(row["train_loss"]) for row in results[n][1]] for n in (1, 2)]
    difference = max(abs(a - b) / abs(a) for a, b in zip(*losses, strict=True))
    print(f"largest relative difference of the training losses, 2 against 1 process: {difference:.1e}")


if __name__ == "__main__":
    main()
