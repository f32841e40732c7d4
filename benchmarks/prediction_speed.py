"""Prediction speed on a CPU or a GPU, one molecule and batches, against PySCF on the same machine.

    python benchmarks/prediction_speed.py --model RUN/model.pt --molecule ethanol --device cuda

A ``fock_orthogonal`` checkpoint predicts held-out frames (the last ``--n-frames`` of the
molecule's file) ``--batch-sizes`` at a time: features, heads, assembly of the Löwdin-orthogonal
Fock matrices on ``--device``, in float64 and in float32 (features and heads), and their orbital
energies (one batched float64 ``eigvalsh`` on the CPU, as ``nhamil.predict`` does). The clock
stops when the energies are on the CPU. Reported: median seconds per molecule
over ``--repeats`` batches, each of new geometries, after a warm-up. Beside it, on the same
machine: the AO overlap that AO orbitals would add (PySCF ``int1e_ovlp``, CPU, per molecule), and
PySCF RHF and B3LYP/def2-SVP single points from minao on ``--scf-threads`` threads (default: all
cores), and the ratios of those to the prediction.

Writes ``benchmarks/results/prediction_speed_<molecule>_<device>.json`` and prints a Markdown table.

With ``--single``: one molecule at a time on the CPU (one thread: ``--torch-threads 1
--scf-threads 1``), as an SCF start or a single point would use it, for any full Fock
checkpoint: the model's own ``predict`` against :class:`nhamil.inference.Predictor` in float64
and float32, each including the model's baseline if it has one, the AO overlap (PySCF
``int1e_ovlp``) and the orbital energies (LAPACK ``eigh``); the baseline, overlap and
diagonalization alone; RHF and B3LYP single points in the same run, and the ratios. Writes
``prediction_speed_<molecule>_single_cpu.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyscf
import scipy.linalg
import torch
from scf_guess import DATA, FILES, single_point_seconds
from threadpoolctl import threadpool_limits
from timing import median_seconds

from nhamil.atomic import atomic_path
from nhamil.evaluate.electronic import overlap_matrix
from nhamil.inference import Predictor
from nhamil.model import HamiltonianModel
from nhamil.reference import ScfSettings, read_frames


def orbital_energies(model: HamiltonianModel, frames, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_frames, n_ao) orbital energies (Hartree) of the Löwdin-orthogonal Fock matrices predicted
    on ``device``, diagonalized together on the CPU in float64, as ``nhamil.predict`` does (LAPACK
    takes 0.17 ms per 72 x 72 matrix on one core; cuSOLVER's batched eigh on an H200, 0.51 ms:
    it loops over the batch)."""
    matrices = model.predict(frames, device=device, dtype=dtype, batch_size=len(frames))
    return torch.linalg.eigvalsh(torch.stack(matrices).to("cpu", torch.float64))


def seconds_per_molecule(
    model: HamiltonianModel, frames, batch_size: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> float:
    """Median seconds per molecule of :func:`orbital_energies` over batches of ``batch_size``
    frames, each batch the next ``batch_size`` frames of ``frames`` (cycled)."""
    cycle = itertools.cycle(frames)
    return (
        median_seconds(
            lambda: orbital_energies(model, list(itertools.islice(cycle, batch_size)), device, dtype), repeats
        )
        / batch_size
    )


def prediction_rows(
    model: HamiltonianModel, frames, batch_sizes: list[int], device: torch.device, repeats: int
) -> list[dict]:
    """One row per batch size: seconds per molecule in float64 and float32."""
    return [
        {
            "batch_size": size,
            **{
                f"{name}_seconds": seconds_per_molecule(model, frames, size, device, dtype, repeats)
                for name, dtype in (("float64", torch.float64), ("float32", torch.float32))
            },
        }
        for size in batch_sizes
    ]


def scf_seconds(atoms, threads: int, repeats: int) -> dict:
    """Median seconds of PySCF's RHF and B3LYP single points of ``atoms`` from minao, and of one
    AO overlap (per molecule), on ``threads`` threads."""
    with threadpool_limits(threads):
        return {
            "overlap_seconds": median_seconds(lambda: overlap_matrix(atoms, ScfSettings()), repeats * 5),
            **single_point_seconds(atoms, repeats),
        }


def with_ratios(rows: list[dict], scf: dict) -> list[dict]:
    """Rows with the RHF and B3LYP times divided by each prediction time."""
    return [
        {
            **row,
            **{
                f"{method}_ratio_{precision}": scf[f"{method}_seconds"] / row[f"{precision}_seconds"]
                for method in ("rhf", "b3lyp")
                for precision in ("float64", "float32")
            },
        }
        for row in rows
    ]


def markdown(rows: list[dict], scf: dict) -> str:
    """A Markdown table: per batch size, ms per molecule and the ratios to RHF and B3LYP."""
    lines = [
        f"PySCF on this machine: RHF {scf['rhf_seconds'] * 1e3:.0f} ms, B3LYP {scf['b3lyp_seconds'] * 1e3:.0f} ms, "
        f"AO overlap {scf['overlap_seconds'] * 1e3:.2f} ms per molecule",
        "",
        "| batch | ms/molecule float64 | RHF ratio | B3LYP ratio | ms/molecule float32 | RHF ratio | B3LYP ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            f"{row[f'{p}_seconds'] * 1e3:.3f} | {row[f'rhf_ratio_{p}']:.0f}x | {row[f'b3lyp_ratio_{p}']:.0f}x"
            for p in ("float64", "float32")
        ]
        lines.append(f"| {row['batch_size']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "pyscf": pyscf.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def _energies(fock: np.ndarray, overlap: np.ndarray, orthogonal: bool) -> np.ndarray:
    """Orbital energies (Hartree) of a Löwdin-orthogonal (plain eigenvalues) or AO Fock matrix."""
    return scipy.linalg.eigh(fock, None if orthogonal else overlap, eigvals_only=True)


def single_molecule_seconds(model: HamiltonianModel, frames, repeats: int) -> dict:
    """Median seconds of one molecule's matrix and orbital energies (overlap included), cycling
    through ``frames`` (new geometries each call): the model's ``predict``, the Predictor in
    float64 and float32, the Predictor's learned part alone, and the baseline, overlap and
    diagonalization alone."""
    orthogonal, settings = model.target.orthogonal, ScfSettings(basis=model.target.scf.basis)
    predictors = {dtype: Predictor(model, frames[0].numbers, dtype=dtype) for dtype in (torch.float64, torch.float32)}
    cycle = itertools.cycle(frames)

    def full(predict):
        atoms = next(cycle)
        _energies(predict(atoms).double().numpy(), overlap_matrix(atoms, settings), orthogonal)

    fock = model.predict([frames[0]], check_domain=False)[0].numpy()
    timed = {
        "model_predict": lambda: full(lambda atoms: model.predict([atoms], check_domain=False)[0]),
        "predictor_float64": lambda: full(lambda atoms: predictors[torch.float64].predict(atoms.positions)),
        "predictor_float32": lambda: full(lambda atoms: predictors[torch.float32].predict(atoms.positions)),
        "predictor_float64_learned_only": lambda: predictors[torch.float64].predict(next(cycle).positions, False),
        "overlap": lambda: overlap_matrix(next(cycle), settings),
        "diagonalization": lambda: _energies(fock, overlap_matrix(frames[0], settings), orthogonal),
    }
    if model.baseline is not None:
        timed["baseline"] = lambda: model.baselines([next(cycle)])
    return {f"{name}_seconds": median_seconds(function, repeats) for name, function in timed.items()}


def single_molecule_result(model: HamiltonianModel, frames, repeats: int) -> dict:
    """:func:`single_molecule_seconds` and RHF, B3LYP single points of the first frame (one
    thread each), with the ratios of the single points to each full prediction, and the load
    average before and after."""
    load = os.getloadavg()[0]
    times = single_molecule_seconds(model, frames, repeats)
    times.update(single_point_seconds(frames[0], max(3, repeats // 10)))
    times["load_average_before_after"] = [load, os.getloadavg()[0]]
    for name in ("model_predict", "predictor_float64", "predictor_float32"):
        for method in ("rhf", "b3lyp"):
            times[f"{method}_ratio_{name}"] = times[f"{method}_seconds"] / times[f"{name}_seconds"]
    return times


def single_markdown(times: dict) -> str:
    """A Markdown table of :func:`single_molecule_result`."""
    lines = [
        f"RHF {times['rhf_seconds'] * 1e3:.0f} ms, B3LYP {times['b3lyp_seconds'] * 1e3:.0f} ms (one thread); "
        f"load average {times['load_average_before_after']}",
        "",
        "| one molecule, matrix + overlap + orbital energies | ms | RHF ratio | B3LYP ratio |",
        "|---|---|---|---|",
    ]
    for name in ("model_predict", "predictor_float64", "predictor_float32"):
        lines.append(
            f"| {name} | {times[f'{name}_seconds'] * 1e3:.2f} | {times[f'rhf_ratio_{name}']:.0f}x | "
            f"{times[f'b3lyp_ratio_{name}']:.0f}x |"
        )
    parts = ("predictor_float64_learned_only", "baseline", "overlap", "diagonalization")
    chosen = [name for name in parts if f"{name}_seconds" in times]
    lines += [f"| {name} alone | {times[f'{name}_seconds'] * 1e3:.2f} | | |" for name in chosen]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a fock_orthogonal checkpoint (model.pt of a run)")
    parser.add_argument("--molecule", choices=sorted(FILES), default="ethanol")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-sizes", type=lambda text: [int(v) for v in text.split(",")], default=[1, 8, 64, 512])
    parser.add_argument("--n-frames", type=int, default=512, help="held-out frames cycled through")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--torch-threads", type=int, default=1, help="threads of torch for a CPU prediction")
    parser.add_argument("--scf-threads", type=int, default=os.cpu_count(), help="threads of PySCF")
    parser.add_argument("--single", action="store_true", help="one molecule on the CPU: Predictor against predict")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results")
    return parser


def main() -> None:
    args = _parser().parse_args()
    torch.set_num_threads(args.torch_threads)
    device = torch.device(args.device)
    model = HamiltonianModel.load(args.model).to(device)
    frames = read_frames(DATA / FILES[args.molecule])[-args.n_frames :]
    if args.single:
        pyscf.lib.num_threads(args.scf_threads)
        result = {"molecule": args.molecule, "model": str(args.model), "machine": machine(device)}
        result["single"] = single_molecule_result(model, frames, args.repeats)
        args.output.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.output / f"prediction_speed_{args.molecule}_single_cpu.json") as path:
            path.write_text(json.dumps(result, indent=2))
        print(single_markdown(result["single"]))
        return
    rows = prediction_rows(model, frames, args.batch_sizes, device, args.repeats)
    scf = scf_seconds(frames[0], args.scf_threads, max(3, args.repeats // 3))
    result = {
        "molecule": args.molecule,
        "model": str(args.model),
        "machine": machine(device),
        "scf_threads": args.scf_threads,
        "scf": scf,
        "rows": with_ratios(rows, scf),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output / f"prediction_speed_{args.molecule}_{device.type}.json") as path:
        path.write_text(json.dumps(result, indent=2))
    print(markdown(result["rows"], scf))


if __name__ == "__main__":
    main()
