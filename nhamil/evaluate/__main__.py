"""``python -m nhamil.evaluate RUN_DIR [--frames FILE --index 800:1000]``.

Predicts the structures (by default the run's own test frames), computes their PySCF
references through the run's cache, and writes ``evaluation.json`` with the parity plots into
``RUN_DIR/evaluation`` (or ``--output``). Unknown elements or a basis other than the model's
are refused before any work. ``--refine-mixing BETA`` evaluates (1 - BETA) F + BETA F[P(F)]
instead of the predictions F of a full Fock model: one damped Fock build per structure at the
references' level (:mod:`nhamil.evaluate.refinement`), timed in ``fock_build_seconds_per_structure``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import reported_as_one_line
from ..predict import predict_matrices
from ..reference import build_reference_set, read_frames
from .refinement import check_refinable, mixed, rebuilt_predictions
from .run import evaluate_predictions, load_run, scf_settings, write_report


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
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    with reported_as_one_line("nhamil.evaluate"):
        model, cfg = load_run(args.run_dir)
        settings = scf_settings(cfg)
        if args.refine_mixing is not None:
            check_refinable(model, args.refine_mixing)
        index = args.index or f"{cfg.split.test[0]}:{cfg.split.test[1]}"
        frames = read_frames(args.frames or cfg.data.frames, index)
        model.check_inputs(frames, settings.basis)
        records = build_reference_set(
            frames, settings, model.target.projection, args.cache_dir or cfg.data.cache_dir, n_workers=args.n_workers
        )
        predicted = predict_matrices(model, frames)
        refinement = {}
        if args.refine_mixing is not None:
            start = time.perf_counter()
            overlaps = [record.overlap for record in records]
            rebuilt = rebuilt_predictions(predicted, frames, overlaps, model.basis, settings, model.target.orthogonal)
            predicted = mixed(predicted, rebuilt, args.refine_mixing)
            refinement = {
                "refinement_mixing": args.refine_mixing,
                "fock_build_seconds_per_structure": (time.perf_counter() - start) / len(frames),
            }
        evaluations, metrics = evaluate_predictions(model, predicted, frames, records, settings, args.margin)
        metrics.update(refinement)
        paths = write_report(args.output or args.run_dir / "evaluation", evaluations, metrics)
    _print_summary(metrics, paths)
    return metrics


def _print_summary(metrics: dict, paths: Sequence[Path]) -> None:
    scalars = {name: value for name, value in metrics.items() if isinstance(value, (int, float, str))}
    width = max(map(len, scalars))
    for name, value in scalars.items():
        print(f"{name:<{width}}  {value:>12.4f}" if isinstance(value, float) else f"{name:<{width}}  {value:>12}")
    print(f"spurious states in structures {metrics['spurious_structures'] or 'none'}")
    print("written:", *map(str, paths), sep="\n  ")


if __name__ == "__main__":
    main()
