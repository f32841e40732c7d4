"""What a run's on-site errors are made of: a uniform shift of each atom's levels, or its shape.

    OPENBLAS_NUM_THREADS=1 python benchmarks/onsite_shift.py RUN_DIR --index 0:50 --index 200:250

For a full Fock run of ``python -m nhamil.train``, predicts the structures of each ``--index``
(slices of the run's data file: test frames, and training frames to compare; the model's
baseline read from the run's baseline cache) and splits the error E = F_pred - F_ref of every
atom's own block (the target's form: Löwdin-orthogonal or AO) into

* its diagonal and off-diagonal elements (MAE, µHa);
* the atom's shift s_A, the mean of the diagonal of E_AA: a potential that moves every level of
  the atom by the same amount, core levels included; the MAE left in E_AA - s_A I;
* the molecule's shift s_M, the mean diagonal of E over all atoms: it moves every orbital energy
  of the molecule by s_M; the MAE left in E_AA - s_M I.

(:func:`nhamil.evaluate.onsite_shift_errors`). The shifts are traces, invariant under rotations
and atom permutations. Prints a Markdown table with one row per ``--index``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nhamil.evaluate import load_run, onsite_shift_errors, run_predictions
from nhamil.reference import read_frames


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--index", action="append", required=True, help="frames of the run's data file, e.g. 0:50")
    return parser


def main() -> None:
    args = _parser().parse_args()
    model, cfg = load_run(args.run_dir)
    model.target.check_full_fock("the on-site shift analysis")
    columns = (
        "on-site MAE",
        "diagonal",
        "off-diagonal",
        "left after s_A",
        "left after s_M",
        "mean abs s_A",
        "mean abs s_M",
    )
    print("| frames (µHa) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for index in args.index:
        errors = run_onsite_shift_errors(model, cfg, index)
        print(f"| {index} | " + " | ".join(f"{value:.0f}" for value in errors.values()) + " |")


def run_onsite_shift_errors(model, cfg, index: str) -> dict[str, float]:
    """:func:`~nhamil.evaluate.onsite_shift_errors` (µHa) of the frames ``index`` of the run."""
    frames = read_frames(cfg.data.frames, index)
    records, predicted = run_predictions(model, cfg, frames)
    targets = model.target.make(records, model.basis).matrices
    return onsite_shift_errors(predicted, targets, model.basis, [atoms.numbers for atoms in frames])


if __name__ == "__main__":
    main()
