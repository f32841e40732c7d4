"""``python -m nhamil.evaluate RUN_DIR [--frames FILE --index 800:1000]``.

Predicts the structures (by default the run's own test frames), computes their PySCF
references through the run's cache, and writes ``evaluation.json`` with the parity plots into
``RUN_DIR/evaluation`` (or ``--output``). Unknown elements or a basis other than the model's
are refused before any work. ``--refine-mixing BETA`` evaluates (1 - BETA) F + BETA F[P(F)]
instead of the predictions F of a full Fock model: one damped Fock build per structure at the
references' level (:mod:`nhamil.evaluate.refinement`), timed in ``fock_build_seconds_per_structure``;
``--refine-onsite-mixing`` gives the on-site blocks a beta of their own. Baselines (``minao``:
one Fock build each) are read from the cache folder's baseline cache, where training left those
of its test frames, and computed and kept there where missing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError, reported_as_one_line
from ..reference import read_frames
from .refinement import Mixing, check_refinable, mixed, rebuilt_predictions
from .run import evaluate_predictions, load_run, run_predictions, scf_settings, split_frames, write_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nhamil.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, help="run folder of nhamil.train (model.pt, .hydra/config.yaml)")
    parser.add_argument("--frames", help="structure file ASE reads (default: the run's data file)")
    parser.add_argument("--index", help="frames as ase.io.read's index, e.g. 800:1000 (default: the run's test split)")
    parser.add_argument("--output", type=Path, help="folder for evaluation.json and plots (default RUN_DIR/evaluation)")
    parser.add_argument("--cache-dir", help="reference cache folder (default: the run's)")
    parser.add_argument("--n-workers", type=int, default=2, help="PySCF worker processes for missing references")
    parser.add_argument(
        "--margin",
        type=float,
        default=1.0,
        help="Hartree outside the reference energy range beyond which a state is spurious",
    )
    parser.add_argument(
        "--refine-mixing",
        type=float,
        help="evaluate (1 - beta) F + beta F[P(F)] of a full Fock model, one Fock build each (beta in (0, 1])",
    )
    parser.add_argument(
        "--refine-onsite-mixing",
        type=float,
        help="beta of the on-site blocks, in [0, 1] (default: --refine-mixing's)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    with reported_as_one_line("nhamil.evaluate"):
        model, cfg = load_run(args.run_dir)
        settings = scf_settings(cfg)
        mixing = _mixing(args)
        if mixing is not None:
            check_refinable(model)
        if args.index:
            frames = read_frames(args.frames or cfg.data.frames, args.index)
        else:
            frames = split_frames(cfg, "test", args.frames)
        records, predicted = run_predictions(model, cfg, frames, args.cache_dir, args.n_workers)
        refinement = {}
        if mixing is not None:
            predicted, refinement = _refined(model, predicted, frames, records, settings, mixing)
        evaluations, metrics = evaluate_predictions(model, predicted, frames, records, settings, args.margin)
        metrics.update(refinement)
        paths = write_report(args.output or args.run_dir / "evaluation", evaluations, metrics)
    _print_summary(metrics, paths)
    return metrics


def _mixing(args: argparse.Namespace) -> Mixing | None:
    """The refinement's :class:`Mixing` of the command line, None without ``--refine-mixing``."""
    if args.refine_mixing is None:
        if args.refine_onsite_mixing is not None:
            raise InputError("--refine-onsite-mixing needs --refine-mixing (the pair blocks' beta)")
        return None
    return Mixing(args.refine_mixing, args.refine_onsite_mixing)


def _refined(model, predicted, frames, records, settings, mixing: Mixing) -> tuple[list, dict]:
    """The refined predictions of ``frames`` and what to add to the metrics (the mixing, the
    seconds of one Fock build per structure)."""
    start = time.perf_counter()
    overlaps = [record.overlap for record in records]
    rebuilt = rebuilt_predictions(predicted, frames, overlaps, model.basis, settings, model.target.orthogonal)
    refined = mixed(predicted, rebuilt, mixing, model.basis, [atoms.numbers for atoms in frames])
    return refined, {
        "refinement_mixing": mixing.pairs,
        "refinement_onsite_mixing": mixing.pairs if mixing.onsite is None else mixing.onsite,
        "fock_build_seconds_per_structure": (time.perf_counter() - start) / len(frames),
    }


def _print_summary(metrics: dict, paths: Sequence[Path]) -> None:
    scalars = {name: value for name, value in metrics.items() if isinstance(value, (int, float, str))}
    width = max(map(len, scalars))
    for name, value in scalars.items():
        print(f"{name:<{width}}  {value:>12.4f}" if isinstance(value, float) else f"{name:<{width}}  {value:>12}")
    print(f"spurious states in structures {metrics['spurious_structures'] or 'none'}")
    print("written:", *map(str, paths), sep="\n  ")


if __name__ == "__main__":
    main()
