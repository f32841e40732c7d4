"""Learning curves as one Hydra multirun sweep: test error against training-set size, per head.

Run from the repository root, e.g.

    OPENBLAS_NUM_THREADS=1 python benchmarks/learning_curves.py water --sizes 40,100,200,400,800 \
        split.test=[800,1000]
    python benchmarks/learning_curves.py ethanol_fock --heads ridge --launcher slurm \
        hydra.launcher.partition=gpu

Each call runs ``python -m nhamil.train -m +experiment=NAME split.train=[0,n],... head=...``
with the joblib launcher (``local``, parallel here) or submitit (``slurm``); extra arguments are
passed to Hydra. The test split is the experiment's own. Then it reads every job's
``metrics.json``, prints a Markdown table and writes a log-log PNG beside the sweep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import matplotlib
from omegaconf import OmegaConf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CURVES = (
    ("hamiltonian_mae_uha", "matrix elements, MAE (µHa)"),
    ("occupied_energy_mae_mev", "occupied energies, MAE (meV)"),
)


def sweep(experiment: str, sizes: list[int], heads: list[str], launcher: str, extra: list[str], folder: Path) -> None:
    """Run the multirun sweep; Hydra writes one sub-folder per job into ``folder``."""
    command = [
        sys.executable,
        "-m",
        "nhamil.train",
        "-m",
        f"+experiment={experiment}",
        "split.train=" + ",".join(f"[0,{n}]" for n in sizes),
        "head=" + ",".join(heads),
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={folder}",
        *extra,
    ]
    subprocess.run(command, cwd=REPO, check=True)


#: Overrides that change neither the model nor its data's level: left out of a curve's label.
NOT_IN_LABEL = ("split.", "data.", "hydra.", "fit.", "+experiment=", "head=")


def collect(folder: Path) -> list[dict]:
    """metrics.json of every finished job of a sweep (or of one run folder), each with a
    ``model`` label (the head and the overrides that define the model, so that runs of other
    features or baselines get a curve of their own), sorted by label and size."""
    runs = []
    for path in [*folder.glob("*/metrics.json"), *folder.glob("metrics.json")]:
        metrics = json.loads(path.read_text())
        overrides = path.parent / ".hydra" / "overrides.yaml"
        chosen = list(OmegaConf.load(overrides)) if overrides.exists() else []
        defining = [item for item in chosen if not item.startswith(NOT_IN_LABEL)]
        runs.append({**metrics, "model": ", ".join([metrics["head"], *defining])})
    return sorted(runs, key=lambda m: (m["model"], m["n_train"]))


def table(runs: list[dict]) -> str:
    """A Markdown table of the runs with the field's metrics; "-" where a run's target has none
    (the AO Fock error and orbital similarity exist for Fock targets only)."""
    columns = (
        ("H MAE (µHa)", "hamiltonian_mae_uha", ".1f"),
        ("AO Fock MAE (µHa)", "fock_ao_mae_uha", ".1f"),
        ("occ. E MAE (µHa)", "occupied_energy_mae_uha", ".1f"),
        ("occ. E MAE (meV)", "occupied_energy_mae_mev", ".2f"),
        ("orbital sim. (%)", "orbital_similarity_pct", ".3f"),
        ("gap MAE (meV)", "gap_mae_mev", ".1f"),
        ("fit (s)", "fit_seconds", ".1f"),
    )
    lines = [
        "| model | train | test | " + " | ".join(name for name, _, _ in columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for run in runs:
        values = [format(run[key], spec) if key in run else "-" for _, key, spec in columns]
        lines.append(f"| {run['model']} | {run['n_train']} | {run['n_test']} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def plot(runs: list[dict], title: str, path: Path) -> None:
    """Error against training-set size (log x, linear y from zero, so that a flat curve looks
    flat), one line per model (head and defining overrides) and error kind, with one legend
    under both panels."""
    models = sorted({m["model"] for m in runs})
    figure, axes = plt.subplots(1, len(CURVES), figsize=(11, 4.2 + 0.22 * len(models)))
    for axis, (key, label) in zip(axes, CURVES, strict=True):
        for model in models:
            chosen = [m for m in runs if m["model"] == model]
            axis.plot([m["n_train"] for m in chosen], [m[key] for m in chosen], "o-", label=model)
        sizes = sorted({m["n_train"] for m in runs})
        axis.set_xscale("log")
        axis.set_xticks(sizes, [str(n) for n in sizes])
        axis.minorticks_off()
        axis.set_ylim(bottom=0)
        axis.set(xlabel="training structures", ylabel=label, title=title)
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    short = [label.replace("features.", "") for label in labels]
    figure.legend(handles, short, loc="lower center", fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06 * len(models) / (1 + 0.05 * len(models)), 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="an experiment of configs/experiment, e.g. water, ethanol_fock")
    parser.add_argument("--sizes", default="40,100,200,400,800", help="comma-separated training-set sizes")
    parser.add_argument("--heads", default="ridge,sparse_kernel", help="comma-separated head options")
    parser.add_argument("--launcher", choices=["local", "slurm"], default="local")
    parser.add_argument("--folder", type=Path, default=None, help="sweep folder (default multirun/curve_EXPERIMENT)")
    parser.add_argument(
        "--add", type=Path, nargs="+", default=[], help="more sweep or run folders to show in the same table and plot"
    )
    parser.add_argument("--no-sweep", action="store_true", help="only collect and plot the runs already there")
    arguments, extra = parser.parse_known_args()
    folder = (arguments.folder or REPO / "multirun" / f"curve_{arguments.experiment}").resolve()
    sizes = [int(n) for n in arguments.sizes.split(",")]
    if not arguments.no_sweep:
        sweep(arguments.experiment, sizes, arguments.heads.split(","), arguments.launcher, extra, folder)
    runs = [run for source in [folder, *arguments.add] for run in collect(source)]
    plot(runs, arguments.experiment, folder / "learning_curve.png")
    print(table(runs))
    print(f"plot: {folder / 'learning_curve.png'}")


if __name__ == "__main__":
    main()
