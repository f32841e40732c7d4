"""Real spherical harmonics: the monomial table against e3nn's module, by number of vectors.

``python benchmarks/harmonics.py [--max-l 6] [--threads 1]`` prints the median time of each
route and their ratio for 36 to 90,000 unit vectors (float64, CPU); the crossover sets
``nhamil.features.harmonics.E3NN_FROM``.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds

from nhamil.features.harmonics import E3NN_FROM, e3nn_harmonics, table_harmonics

SIZES = (36, 300, 1000, 3000, 10000, 30000, 90000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-l", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"max_l {args.max_l}, {args.threads} thread(s), float64; switch to e3nn at {E3NN_FROM} vectors")
    print(f"{'vectors':>8}  {'table (us)':>11}  {'e3nn (us)':>10}  {'table / e3nn':>12}")
    for n in SIZES:
        unit = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        unit = unit / unit.norm(dim=-1, keepdim=True)
        repeats = max(5, min(200, 200_000 // n))
        table = median_seconds(lambda unit=unit: table_harmonics(args.max_l, unit), repeats)
        e3nn = median_seconds(lambda unit=unit: e3nn_harmonics(args.max_l, unit), repeats)
        print(f"{n:8d}  {table * 1e6:11.0f}  {e3nn * 1e6:10.0f}  {table / e3nn:12.2f}")


if __name__ == "__main__":
    main()
