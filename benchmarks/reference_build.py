"""Reference build throughput: structures per minute of ``python -m nhamil.reference`` with one shard
and two shards through Hydra's ``submitit_local`` launcher, and with the local pool (one shard,
``data.n_workers=2``); the baseline is the one-shard run. Each run starts in a fresh cache folder.

Run from the repository root, e.g.

    OPENBLAS_NUM_THREADS=1 nice -n 5 python benchmarks/reference_build.py --frames 0:30 \
        --cache-root /work/cache/refbuild

Two rates per run: over the command's wall time (Python, imports and the launcher included) and
over the slowest shard's build time (``summary.json``: claims, SCF and writes only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> extra arguments of ``python -m nhamil.reference`` (and whether it is a multirun).
RUNS = {
    "1 shard, submitit_local": ["-m", "hydra/launcher=submitit_local", "shard=0", "n_shards=1", "data.n_workers=1"],
    "2 shards, submitit_local": ["-m", "hydra/launcher=submitit_local", "shard=0,1", "n_shards=2", "data.n_workers=1"],
    "local pool, n_workers=2": ["shard=0", "n_shards=1", "data.n_workers=2"],
}


def run(name: str, extra: list[str], common: list[str], folder: Path) -> dict:
    """Run one configuration in ``folder`` (fresh cache and run folders); its timings."""
    folder.mkdir(parents=True)
    where = f"hydra.sweep.dir={folder / 'runs'}" if extra[0] == "-m" else f"hydra.run.dir={folder / 'runs'}"
    command = [sys.executable, "-m", "nhamil.reference", *extra, *common, f"data.cache_dir={folder / 'cache'}", where]
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summaries = [json.loads(path.read_text()) for path in sorted((folder / "runs").rglob("summary.json"))]
    computed = sum(s["n_computed"] for s in summaries)
    build = max(s["seconds"] for s in summaries)
    return {"name": name, "computed": computed, "wall_s": wall, "build_s": build, "shards": len(summaries)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="water_coords_1000.xyz", help="packaged structure file")
    parser.add_argument("--frames", default="0:30", help="frames (index setting)")
    parser.add_argument("--basis", default="def2-svp")
    parser.add_argument("--cache-root", type=Path, default=Path("/work/cache/refbuild"))
    args = parser.parse_args()
    common = [
        f"data.frames=${{nhamil.data:{args.data}}}",
        f"index={args.frames}",
        f"reference.basis={args.basis}",
        "progress=false",
    ]
    root = args.cache_root / time.strftime("%Y%m%d-%H%M%S")
    print(f"{args.data} frames {args.frames}, RHF/{args.basis}; load before: {os.getloadavg()}")
    results = [run(name, extra, common, root / f"run{k}") for k, (name, extra) in enumerate(RUNS.items())]
    print(f"load after: {os.getloadavg()}")
    base = results[0]
    print("| run | structures | wall (s) | per min (wall) | x baseline | build (s) | per min (build) | x baseline |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        per_wall, per_build = 60 * r["computed"] / r["wall_s"], 60 * r["computed"] / r["build_s"]
        print(
            f"| {r['name']} | {r['computed']} | {r['wall_s']:.1f} | {per_wall:.1f} "
            f"| {base['wall_s'] / r['wall_s']:.2f} "
            f"| {r['build_s']:.1f} | {per_build:.1f} | {base['build_s'] / r['build_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
