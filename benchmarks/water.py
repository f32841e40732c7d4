"""Water benchmarks: published SAPH split, SAPH learning curve, full Fock, and costs.

Run from the repository root:

    OPENBLAS_NUM_THREADS=1 python benchmarks/water.py

Prints a table and writes ``benchmarks/results/water.json`` and
``benchmarks/results/water_learning_curve.png``. The reference set is built from scratch in a
temporary cache, so its time is the real cost of the 1000 PySCF single points.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from nhamil.config import compose_config  # noqa: E402
from nhamil.model import HamiltonianModel  # noqa: E402
from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, read_frames  # noqa: E402
from nhamil.train import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNING_CURVE_SIZES = (40, 100, 200, 400, 800)


def build_reference(cache: Path) -> dict:
    """Wall time of the 1000-frame RHF/def2-SVP reference set, and the median SCF time."""
    frames = read_frames(compose_config(["+experiment=water"]).data.frames)
    start = time.perf_counter()
    records = build_reference_set(frames, ScfSettings(), ProjectionSettings(), cache, n_workers=2)
    return {
        "reference_build_seconds": time.perf_counter() - start,
        "n_frames": len(frames),
        "scf_seconds_median": statistics.median(r.wall_time for r in records),
    }


def run(name: str, overrides: list[str], cache: Path, runs: Path) -> dict:
    cfg = compose_config([*overrides, f"data.cache_dir={cache}"])
    metrics = train(cfg, runs / name)
    metrics["predict_seconds_median"] = predict_time(runs / name / "model.pt", cfg)
    return metrics


def predict_time(checkpoint: Path, cfg, repeats: int = 50) -> float:
    """Median wall time to predict one test molecule on its own (features, heads, assembly), on
    one thread: for one small molecule a second thread only waits (and on a shared machine
    OpenMP waits made it up to 100x slower)."""
    model = HamiltonianModel.load(checkpoint)
    frames = read_frames(cfg.data.frames, f"{cfg.split.test[0]}:{cfg.split.test[0] + repeats}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    for atoms in frames:
        start = time.perf_counter()
        model.predict([atoms])
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return statistics.median(times)


def plot_learning_curve(curve: dict[int, dict], path: Path) -> None:
    sizes = sorted(curve)
    figure, axis = plt.subplots(figsize=(5, 4))
    for key, label in [
        ("energy_rmse_mev", "orbital energies, RMSE (meV)"),
        ("hamiltonian_mae_uha", "matrix elements, MAE (µHa)"),
    ]:
        axis.loglog(sizes, [curve[n][key] for n in sizes], "o-", label=label)
    axis.set_xticks(sizes, [str(n) for n in sizes])
    axis.minorticks_off()
    axis.set(xlabel="training frames", title="water SAPH, test: last 200 frames")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        cache, runs = Path(scratch) / "cache", Path(scratch) / "runs"
        results = {"reference": build_reference(cache)}
        results["saph_published_split"] = run("saph", ["+experiment=water"], cache, runs)
        results["saph_learning_curve"] = {
            n: run(f"curve{n}", ["+experiment=water", f"split.train=[0,{n}]", "split.test=[800,1000]"], cache, runs)
            for n in LEARNING_CURVE_SIZES
        }
        results["fock_orthogonal"] = run("fock", ["+experiment=water_fock"], cache, runs)
    (RESULTS / "water.json").write_text(json.dumps(results, indent=2))
    plot_learning_curve(results["saph_learning_curve"], RESULTS / "water_learning_curve.png")
    print(report(results))


def report(results: dict) -> str:
    """The numbers of benchmarks/RESULTS.md as a Markdown table."""
    ref, scf = results["reference"], results["reference"]["scf_seconds_median"]
    lines = [
        f"reference set: {ref['n_frames']} frames in {ref['reference_build_seconds']:.1f} s "
        f"(2 workers); median SCF {scf * 1000:.1f} ms",
        "",
        "| run | train | test | H MAE (µHa) | E RMSE all (meV) | E MAE occ (meV) | gap MAE (meV) | fit (s) "
        "| predict/mol (ms) | SCF/predict |",
        "|" + "---|" * 10,
    ]
    named = [
        ("SAPH, published split", results["saph_published_split"]),
        *[("SAPH, curve", m) for m in results["saph_learning_curve"].values()],
        ("full Fock (orthogonal)", results["fock_orthogonal"]),
    ]
    for name, m in named:
        lines.append(
            f"| {name} | {m['n_train']} | {m['n_test']} | {m['hamiltonian_mae_uha']:.1f} | "
            f"{m['energy_rmse_mev']:.2f} | {m['occupied_energy_mae_mev']:.2f} | {m['gap_mae_mev']:.2f} | "
            f"{m['fit_seconds']:.1f} | {m['predict_seconds_median'] * 1000:.1f} | "
            f"{scf / m['predict_seconds_median']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
