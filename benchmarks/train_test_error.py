"""Train against test error of a fitted Fock model: does it underfit (features limit it) or overfit (data do)?

    OPENBLAS_NUM_THREADS=1 python benchmarks/train_test_error.py RUN/model.pt --frames 0:40 800:1000 \
        --cache-dir /work/cache/nhamil

Predicts each frame range of the data file again (default: the shipped ethanol frames) and
prints the MAE of the AO Fock matrix against the cached references of the model's own level of
theory (µHa; for an orthogonal target, of its Löwdin-orthogonal matrix). Ranges inside the
training split give the training error; the experiment's test split the test error.
"""

from __future__ import annotations

import argparse

import numpy as np

from nhamil.data import data_file
from nhamil.model import HamiltonianModel
from nhamil.reference import ProjectionSettings, build_reference_set, lowdin_orthogonalize, read_frames


def range_mae_uha(model: HamiltonianModel, path: str, text: str, cache_dir: str) -> float:
    """MAE (µHa) of the model's predictions on frames ``START:STOP`` of ``path``."""
    start, stop = (int(part) for part in text.split(":"))
    frames = read_frames(path, text)
    records = build_reference_set(
        frames, model.target.scf, ProjectionSettings(), cache_dir, n_workers=1, progress=False,
        labels=list(range(start, start + len(frames))),
    )  # fmt: skip
    references = [lowdin_orthogonalize(r.fock, r.overlap) if model.target.orthogonal else r.fock for r in records]
    errors = [np.abs(p.numpy() - f).mean() for p, f in zip(model.predict(frames), references, strict=True)]
    return 1e6 * float(np.mean(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a fitted model.pt of a fock or fock_orthogonal target")
    parser.add_argument("--frames", nargs="+", default=["0:40", "800:1000"], help="START:STOP ranges")
    parser.add_argument("--data", default=str(data_file("ethanol-structures.xyz")), help="structure file")
    parser.add_argument("--cache-dir", default=".nhamil-cache", help="reference cache of the training run")
    args = parser.parse_args()
    model = HamiltonianModel.load(args.model)
    for text in args.frames:
        print(f"frames {text}: Fock MAE {range_mae_uha(model, args.data, text, args.cache_dir):.1f} µHa", flush=True)


if __name__ == "__main__":
    main()
