"""Peak memory and fit time of the in-memory (baseline) and the streamed fit against the number of frames.

``OPENBLAS_NUM_THREADS=1 python benchmarks/fit_memory.py --frames 25 50 100 [--chunk 8] [--four-body]
[--processes 2] [--n-active M]``: for each size, a fresh subprocess per fit mode fits an ethanol
def2-SVP model (ethanol_md17's features: 4 radial x l <= 4; ``--four-body``: also
``pair_correlation_order=2 contraction_channels=64``) on random symmetric targets (memory and time
do not depend on the values), with ridge heads or, with ``--n-active``, sparse kernel heads over M
active samples, and reports its peak resident memory (VmHWM of /proc/self/status, GB) and fit
seconds, and the ratios streamed / in-memory. ``--processes N``: also the streamed fit on N gloo
processes (torchrun) at each size, its wall time against one streamed process, and whether its
weights equal the one-process ones (largest relative difference over heads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase
import numpy as np
import torch

from nhamil.data import data_file
from nhamil.distributed import process_group
from nhamil.features import DensitySettings, FeatureSettings
from nhamil.heads import KernelSettings, RidgeSettings
from nhamil.heads.streaming import StreamSettings
from nhamil.model import HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import read_frames

SPECIES = [1, 6, 8]


def _features(four_body: bool) -> FeatureSettings:
    extra = {"pair_correlation_order": 2, "contraction_channels": 64} if four_body else {}
    return FeatureSettings(density=DensitySettings(max_radial=4, max_angular=4), **extra)


def _data(n_frames: int) -> tuple[list[ase.Atoms], list[torch.Tensor], AtomicBasis]:
    frames = read_frames(data_file("ethanol-structures.xyz"), f":{n_frames}")
    basis = AtomicBasis.from_pyscf("def2-svp", SPECIES)
    size = basis.n_ao(frames[0].numbers)
    rng = np.random.default_rng(0)
    matrices = [torch.as_tensor(a + a.T) for a in rng.normal(size=(n_frames, size, size))]
    return frames, matrices, basis


def fit_once(n_frames: int, mode: str, chunk: int, four_body: bool, n_active: int | None, output: str | None) -> dict:
    """One fit in this process (mode "memory" or "stream"); rank 0 saves the weights to ``output``."""
    frames, matrices, basis = _data(n_frames)
    streaming = StreamSettings(chunk_frames=chunk) if mode == "stream" else None
    head = RidgeSettings() if n_active is None else KernelSettings(n_active=n_active)
    with process_group("cpu") as shard:
        model = HamiltonianModel(basis, SPECIES, target="fock", features=_features(four_body), head=head)
        start = time.perf_counter()
        model.fit(frames, matrices, progress=False, streaming=streaming, shard=shard)
        seconds = time.perf_counter() - start
        if output and shard.writes:
            torch.save({key: getattr(fit, "ridge", fit).weights for key, (_, fit) in model.heads.items()}, output)
    return {"fit_seconds": seconds, "peak_gb": _peak_gb()}


def _peak_gb() -> float:
    status = Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20


def _run(args: list[str], processes: int = 1) -> dict:
    """A fresh process (or ``processes`` under torchrun) running ``fit_once``; its JSON result."""
    script = [str(Path(__file__).resolve()), "--child", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    command = [*launcher, *script] if processes > 1 else [sys.executable, *script]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_seconds": time.perf_counter() - start}


def _largest_difference(first: str, second: str) -> float:
    a, b = torch.load(first, weights_only=False), torch.load(second, weights_only=False)
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-300)) for k in b)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--four-body", action="store_true")
    parser.add_argument("--n-active", type=int, default=None, help="sparse kernel heads over this many samples")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["memory", "stream"])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--mode", default="stream")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    if args.child:
        torch.set_num_threads(1)
        result = fit_once(args.frames[0], args.mode, args.chunk, args.four_body, args.n_active, args.output)
        if int(os.environ.get("RANK", 0)) == 0:
            print(json.dumps(result))
        return
    print(f"load before: {os.getloadavg()}")
    print("frames  mode       peak GB  fit s   wall s")
    with tempfile.TemporaryDirectory() as folder:
        for n in args.frames:
            results = {}
            for mode in args.modes:
                common = ["--frames", str(n), "--chunk", str(args.chunk), "--mode", mode]
                common += ["--four-body"] if args.four_body else []
                common += ["--n-active", str(args.n_active)] if args.n_active else []
                results[mode] = _run([*common, "--output", f"{folder}/{mode}.pt"])
                r = results[mode]
                print(f"{n:6d}  {mode:9s} {r['peak_gb']:8.3f} {r['fit_seconds']:7.1f} {r['wall_seconds']:7.1f}")
            if {"memory", "stream"} <= set(results):
                m, s = results["memory"], results["stream"]
                print(f"        stream / memory: peak {s['peak_gb'] / m['peak_gb']:.3f}, "
                      f"fit time {s['fit_seconds'] / m['fit_seconds']:.3f}")  # fmt: skip
            if args.processes > 1 and "stream" in results:
                common = ["--frames", str(n), "--chunk", str(args.chunk), "--mode", "stream"]
                common += ["--four-body"] if args.four_body else []
                common += ["--n-active", str(args.n_active)] if args.n_active else []
                many = _run([*common, "--output", f"{folder}/many.pt"], args.processes)
                difference = _largest_difference(f"{folder}/many.pt", f"{folder}/stream.pt")
                print(f"        {args.processes} processes: fit {many['fit_seconds']:.1f} s, "
                      f"ratio to 1 process {many['fit_seconds'] / results['stream']['fit_seconds']:.3f}; "
                      f"largest relative weight difference {difference:.2e}")  # fmt: skip
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
