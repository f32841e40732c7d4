"""RPR against nhamil's symmetry-adapted models: dipoles and polarizabilities of
1,2-dichloroethane along an ab initio MD trajectory (``nhamil.properties``).

Run from the repository root:

    OPENBLAS_NUM_THREADS=1 python benchmarks/properties.py [--frames 1000 --train 400 --test 500]

Builds (or reads from ``.nhamil-cache/properties``) the trajectory at the default level of
theory (RHF/STO-3G, 1500 K Langevin, 1 fs steps), runs the comparison of
``nhamil.properties.run.compare`` and writes ``benchmarks/results/properties_<T>K.json`` and
the PNG plots under ``benchmarks/results/properties_<T>K/``. The paper's split is ``--frames 2200 --train 1000
--test 1200``; the same as ``python -m nhamil.train +experiment=dipole_dce``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from omegaconf import OmegaConf

from nhamil.atomic import atomic_path
from nhamil.properties import PropertiesConfig, train_properties

RESULTS = Path(__file__).resolve().parent / "results"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--curve", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--head", choices=["ridge", "kernel"], default="ridge")
    parser.add_argument("--temperature", type=float, default=1500.0, help="Langevin bath, K")
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    cfg = OmegaConf.structured(PropertiesConfig)
    cfg.trajectory.n_frames, cfg.n_train, cfg.n_test = arguments.frames, arguments.train, arguments.test
    cfg.learning_curve, cfg.equivariant.head = arguments.curve, arguments.head
    cfg.trajectory.temperature_K = arguments.temperature
    tag = f"properties_{arguments.temperature:.0f}K"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Module .* is under testing")
        metrics = train_properties(cfg, RESULTS / tag)
    metrics["wall_seconds"] = time.perf_counter() - start
    with atomic_path(RESULTS / f"{tag}.json") as temporary:
        temporary.write_text(json.dumps({"config": OmegaConf.to_container(cfg), "metrics": metrics}, indent=2))
    for name, value in metrics.items():
        if "/n" not in name:
            print(f"{name:55s} {value:12.5f}")


if __name__ == "__main__":
    main()
