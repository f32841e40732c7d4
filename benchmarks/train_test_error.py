"""Train against test error of a training run: does the model underfit (features limit it) or overfit (data do)?

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_test_error.py RUN_DIR [--train-frames 40]

Predicts the first ``--train-frames`` training frames of a run folder (``python -m
nhamil.train``'s output) again and its test split, against the references of the run's cache,
and prints the run's own metrics (``nhamil.evaluate.target_errors``) for both: the matrix MAE of
the learned target and, for a Fock target, the AO Fock MAE (µHa).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nhamil.evaluate import load_run, target_errors
from nhamil.reference import read_frames
from nhamil.train import reference_records

METRICS = ("hamiltonian_mae_uha", "fock_ao_mae_uha")


def split_errors(run_dir: Path, n_train: int) -> dict[str, dict[str, float]]:
    """{"train": metrics, "test": metrics} of the run: its first ``n_train`` training frames and its test split."""
    model, cfg = load_run(run_dir)
    frames = read_frames(cfg.data.frames)
    start = cfg.split.train[0]
    splits = {
        "train": list(range(start, min(start + n_train, cfg.split.train[1]))),
        "test": list(range(*cfg.split.test)),
    }
    errors = {}
    for name, used in splits.items():
        records = reference_records(cfg, frames, used, model.target)
        targets = model.target.make([records[i] for i in used])
        chosen = [frames[i] for i in used]
        predicted = [p.numpy() for p in model.predict(chosen, check_domain=False)]
        errors[name] = target_errors(predicted, targets, [a.numbers for a in chosen])
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run folder with model.pt and .hydra/config.yaml")
    parser.add_argument("--train-frames", type=int, default=40, help="training frames predicted again")
    args = parser.parse_args()
    for name, errors in split_errors(args.run, args.train_frames).items():
        shown = ", ".join(f"{metric} {errors[metric]:.1f}" for metric in METRICS if metric in errors)
        print(f"{name}: {shown}", flush=True)


if __name__ == "__main__":
    main()
