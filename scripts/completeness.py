"""Print the completeness study's table: relative feature distances between the paper's degenerate
structures, around their carbon, per feature family.

    python scripts/completeness.py [--data DIR] [--max-radial 4] [--max-angular 4] [--cutoff 4.0]

Distance of structure k from structure 0: ||A - P B|| / sqrt((||A||^2 + ||B||^2) / 2) of the
invariants (lam = 0, both parities), P the best matching of neighbour (pair) or neighbour-pair
(triplet) samples; 0 means the family cannot tell the structures apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io

from nhamil.data import data_file
from nhamil.errors import reported_as_one_line
from nhamil.features import DensitySettings
from nhamil.features.completeness import family_invariants, matched_distance

FILES = {"powerspectrum-triplet.xyz": "CH7, same nu=2", "bispectrum.xyz": "CH6O, same nu=3"}


def distance_table(data: Path | None, settings: DensitySettings) -> dict[str, dict[str, list[float]]]:
    """File -> family -> distances of structures 1.. from structure 0 around atom 0 (carbon); the
    files (compressed or not) are read from the folder ``data``, by default those shipped with nhamil."""
    table = {}
    for name in FILES:
        frames = ase.io.read(data_file(name, data), ":")
        species = sorted({int(z) for atoms in frames for z in atoms.numbers})
        invariants = [family_invariants(atoms, 0, species, settings) for atoms in frames]
        table[name] = {
            family: [matched_distance(first, other[family]) for other in invariants[1:]]
            for family, first in invariants[0].items()
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, help="folder holding the files (default: those shipped with nhamil, or $NHAMIL_DATA_DIR)"
    )
    parser.add_argument("--max-radial", type=int, default=4)
    parser.add_argument("--max-angular", type=int, default=4)
    parser.add_argument("--cutoff", type=float, default=4.0)
    args = parser.parse_args()
    settings = DensitySettings(cutoff=args.cutoff, max_radial=args.max_radial, max_angular=args.max_angular)
    with reported_as_one_line("completeness.py"):
        table = distance_table(args.data, settings)
    columns = [(name, k) for name, rows in table.items() for k in range(len(next(iter(rows.values()))))]
    print(f"relative distance to structure 0 (around C; {settings})")
    print(f"{'family':<16}" + "".join(f"{FILES[name][:4]} 0-{k + 1:<6}" for name, k in columns))
    for family in next(iter(table.values())):
        print(f"{family:<16}" + "".join(f"{table[name][family][k]:<13.2e}" for name, k in columns))


if __name__ == "__main__":
    main()
