"""SCF start guesses from predicted Fock matrices, and prediction speed against PySCF.

    OPENBLAS_NUM_THREADS=1 python benchmarks/scf_guess.py --molecule ethanol --method rhf

1. Trains a ``fock_orthogonal`` model at the chosen level of theory (RHF, or PBE with
   ``--method pbe``; def2-SVP) on the first ``--n-train`` frames (references cached).
2. Converges held-out frames (the last ``--n-test`` of the file) from the model's density and
   from PySCF's guesses; counts cycles and wall time (``nhamil.scf_guess``).
3. With ``--speed``: the time to predict one molecule (features, heads, assembly, overlap,
   diagonalization; features and heads in float64 and in float32) next to RHF and B3LYP single
   points (PySCF's minao guess), median of repeats.

Writes ``benchmarks/results/scf_guess_<molecule>_<method>_model_<model method>_<head or checkpoint>.json``
(a checkpoint ``multirun/curve_x/2/model.pt`` is named ``curve_x_2``) and prints
Markdown tables. ``--head sparse_kernel`` fits lambda-SOAP kernel heads instead of ridge;
``--baseline sap`` learns the difference to the SAP Fock matrix;
``--model RUN/model.pt`` takes a trained checkpoint instead (then the training and feature
options do not apply). ``--frames FILE --index A:B --method model`` converges other test
structures (the molecules experiment's cached SMILES molecules) at the model's own level of
theory, density fitting included; each of those compositions is seen once, so its guess time
includes the prediction's whole set-up.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import pyscf
import torch
from timing import median_seconds

from nhamil.atomic import atomic_path
from nhamil.data import data_file, data_folder
from nhamil.evaluate.electronic import orbitals_from_orthogonal, overlap_matrix
from nhamil.features import DensitySettings
from nhamil.heads import KernelSettings, RidgeSettings
from nhamil.model import FeatureSettings, HamiltonianModel
from nhamil.orbitals import AtomicBasis
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, read_frames
from nhamil.reference.baseline import BASELINES
from nhamil.scf_guess import compare_guesses, run_from_guess, runs_as_rows, summarize_runs
from nhamil.targets import Target

#: The structure files shipped with nhamil (or those in $NHAMIL_DATA_DIR): DATA / FILES[molecule].
DATA = data_folder()
FILES = {"water": data_file("water_coords_1000.xyz").name, "ethanol": data_file("ethanol-structures.xyz").name}
LEVELS = {
    "rhf": ScfSettings(method="rhf"),
    "pbe": ScfSettings(method="rks", xc="pbe"),
    "b3lyp": ScfSettings(method="rks", xc="b3lyp"),
    "pbe0": ScfSettings(method="rks", xc="pbe0"),
}
#: ``--method`` for the level of theory the ``--model`` was trained at.
MODEL_LEVEL = "model"


def train_model(frames, settings: ScfSettings, args) -> HamiltonianModel:
    """A fock_orthogonal model fitted on ``frames`` at ``settings``."""
    records = build_reference_set(frames, settings, ProjectionSettings(), args.cache_dir, n_workers=args.n_workers)
    species = sorted({int(z) for a in frames for z in a.numbers})
    basis = AtomicBasis.from_pyscf(settings.basis, species)
    target = Target("fock_orthogonal", settings)
    targets = target.make(records, basis)
    features = FeatureSettings(density=DensitySettings(max_radial=args.max_radial, max_angular=args.max_angular))
    head = KernelSettings(n_active=args.n_active) if args.head == "sparse_kernel" else RidgeSettings()
    model = HamiltonianModel(basis, species, target=target, features=features, head=head, baseline=args.baseline)
    return model.fit(frames, [torch.as_tensor(m) for m in targets.matrices])


def speed(model: HamiltonianModel, frames, repeats: int) -> dict:
    """Median seconds per molecule of each stage of a prediction (features, heads, assembly and
    the model's baseline if any, in float64 and in float32; then overlap and diagonalization to
    occupied orbitals), cycling through ``frames`` (same composition, new geometry each call),
    next to converging one frame with PySCF RHF and B3LYP (:func:`single_point_seconds`)."""
    n_occupied = int(frames[0].numbers.sum()) // 2
    cycle = itertools.cycle(frames)
    fock = model.predict([frames[0]])[0].numpy()

    def diagonalize():
        orbitals_from_orthogonal(fock, overlap_matrix(next(cycle), LEVELS["rhf"]), n_occupied)

    result = {
        "matrix_seconds": median_seconds(lambda: model.predict([next(cycle)]), repeats),
        "matrix_float32_seconds": median_seconds(lambda: model.predict([next(cycle)], dtype=torch.float32), repeats),
        "orbitals_seconds": median_seconds(diagonalize, repeats),
        **single_point_seconds(frames[0], repeats),
    }
    for precision in ("", "_float32"):
        total = result[f"matrix{precision}_seconds"] + result["orbitals_seconds"]
        result[f"predict{precision}_seconds"] = total
        result[f"rhf_ratio{precision}"] = result["rhf_seconds"] / total
        result[f"b3lyp_ratio{precision}"] = result["b3lyp_seconds"] / total
    return {**result, "threads": torch.get_num_threads()}


def single_point_seconds(atoms, repeats: int) -> dict:
    """Median seconds of converging ``atoms`` with PySCF RHF (``repeats`` times) and B3LYP (a
    third as often; libxc B3LYP with VWN-RPA, PySCF >= 2.3 "b3lyp"), def2-SVP, from minao."""
    return {
        "rhf_seconds": median_seconds(lambda: run_from_guess(atoms, ScfSettings(method="rhf"), "minao"), repeats),
        "b3lyp_seconds": median_seconds(
            lambda: run_from_guess(atoms, ScfSettings(method="rks", xc="b3lyp"), "minao"), max(1, repeats // 3)
        ),
    }


def markdown(summary: dict) -> str:
    """A Markdown table of the per-guess summary."""
    rows = [
        "| guess | converged | cycles mean | median | min-max | cycle histogram | SCF s | SCF + guess s "
        "| median SCF + guess s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        histogram = ", ".join(f"{k}:{v}" for k, v in s["cycles_histogram"].items())
        rows.append(
            f"| {name} | {s['converged']}/{s['n']} | {s['cycles_mean']:.2f} | {s['cycles_median']:.0f} | "
            f"{s['cycles_min']}-{s['cycles_max']} | {histogram} | {s['scf_seconds_mean']:.3f} | "
            f"{s['total_seconds_mean']:.3f} | {s['total_seconds_median']:.3f} |"
        )
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--molecule", choices=sorted(FILES), default="water")
    parser.add_argument(
        "--frames",
        type=Path,
        help="test structures from this file (any ASE reads, e.g. the molecules experiment's cached "
        "<cache_dir>/molecules/*.extxyz) instead of the last --n-test frames of --molecule's; needs --model",
    )
    parser.add_argument("--index", help="with --frames: the test frames, as ase.io.read's index (e.g. 0:50)")
    parser.add_argument(
        "--method",
        choices=sorted(LEVELS) + [MODEL_LEVEL],
        default="rhf",
        help=f"the SCF's level of theory; {MODEL_LEVEL!r}: the --model's own (density fitting included)",
    )
    parser.add_argument(
        "--model-method",
        choices=sorted(LEVELS),
        help="level of theory the model learns (default: --method; rhf with --method pbe tests "
        "an RHF-trained guess for PBE)",
    )
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=50)
    parser.add_argument("--max-radial", type=int, default=6)
    parser.add_argument("--max-angular", type=int, default=6)
    parser.add_argument(
        "--model",
        type=Path,
        help="a trained fock_orthogonal checkpoint (model.pt of a run) to use "
        "instead of training one; its training frames must not overlap the test frames",
    )
    parser.add_argument(
        "--baseline",
        choices=BASELINES,
        help="learn the difference to this cheap Fock matrix "
        "(nhamil.reference.baseline), which the prediction then includes",
    )
    parser.add_argument(
        "--any-level",
        action="store_true",
        help="let a model of another level of theory start the SCF (an RHF model for B3LYP)",
    )
    parser.add_argument("--head", choices=["ridge", "sparse_kernel"], default="ridge")
    parser.add_argument("--n-active", type=int, default=500, help="active samples per block of the sparse kernel")
    parser.add_argument("--guesses", nargs="+", default=["minao", "atom", "huckel", "1e"], help="PySCF guesses")
    parser.add_argument("--conv-tol", type=float, default=1e-9, help="SCF energy threshold (Hartree), PySCF's default")
    parser.add_argument("--speed", action="store_true", help="also time one prediction against RHF and B3LYP")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and of PySCF in the speed comparison")
    parser.add_argument("--cache-dir", default=".nhamil-cache")
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    if (args.frames or args.method == MODEL_LEVEL) and not args.model:
        parser.error("--frames and --method model need --model")
    if args.frames:
        frames = test = read_frames(args.frames, args.index or ":")
        train, test_frames, source = [], args.index or ":", args.frames.stem
    else:
        frames = read_frames(DATA / FILES[args.molecule])
        train, test = frames[: args.n_train], frames[-args.n_test :]
        test_frames, source = [len(frames) - args.n_test, len(frames)], args.molecule
    start = time.perf_counter()
    model_method = args.model_method or args.method
    model = HamiltonianModel.load(args.model) if args.model else train_model(train, LEVELS[model_method], args)
    if args.model:
        model_method = model.target.scf.xc or model.target.scf.method
    fit_seconds = time.perf_counter() - start
    level = model.target.scf if args.method == MODEL_LEVEL else LEVELS[args.method]
    settings = ScfSettings(**{**level.to_dict(), "conv_tol": args.conv_tol})
    method = model_method if args.method == MODEL_LEVEL else args.method
    load_before = os.getloadavg()
    runs = compare_guesses(model, test, settings, args.guesses, same_level=not args.any_level)
    result = {
        "molecule": source,
        "method": method,
        "density_fit": settings.density_fit,
        "model_method": model_method,
        "xc": settings.xc,
        "basis": settings.basis,
        "conv_tol": args.conv_tol,
        "n_train": args.n_train,
        "test_frames": test_frames,
        "features": {"max_radial": args.max_radial, "max_angular": args.max_angular},
        "baseline": model.baseline,
        "head": args.head if args.head == "ridge" else f"{args.head} ({args.n_active} active)",
        "checkpoint": str(args.model) if args.model else None,
        "train_and_fit_seconds": fit_seconds,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "summary": summarize_runs(runs),
        "runs": runs_as_rows(runs),
    }
    if args.speed:
        torch.set_num_threads(args.threads)
        pyscf.lib.num_threads(args.threads)
        result["speed"] = speed(model, test, args.repeats)
    trained = f"{args.head}_{args.baseline}" if args.baseline else args.head
    checkpoint = "_".join(args.model.resolve().parts[-3:-1]) if args.model else None  # sweep and job folders
    name = f"scf_guess_{source}_{method}_model_{model_method}_{checkpoint or trained}.json"
    with atomic_path(args.output / name) as temporary:
        temporary.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result["summary"]))
    print(json.dumps(result.get("speed", {}), indent=2))


if __name__ == "__main__":
    main()
