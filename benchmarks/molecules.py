"""The molecules experiment (SMILES -> 3D -> references -> models): build costs and references.

    python benchmarks/molecules.py timing --molecules 6      # s per molecule: DF-RHF vs B3LYP/def2-SVP
    python benchmarks/molecules.py build 0:100 200:300 ...   # references of these frames, in order
    python benchmarks/molecules.py report RUN_DIR ...        # errors by size, element pair; pair counts
    python benchmarks/molecules.py plot RUN_DIR ... -o curve.png  # learning curve of the runs

Both read ``+experiment=molecules`` (extra Hydra overrides after ``--overrides``), with
``data.cache_dir`` from ``NHAMIL_CACHE_DIR``. ``timing`` runs single points, single-threaded, of the
first molecules of the test split at the experiment's level (density-fitted RHF/def2-SVP) and at
QH9's (B3LYP/def2-SVP), and prints seconds per molecule and their ratio (B3LYP the baseline).
``build`` fills the reference cache that the training run reads, frame ranges of the in-size file
first and ``x:START:STOP`` ranges of the extrapolation file, one range after the other, so that an
interrupted build leaves whole ranges. ``report`` predicts a run's test and extrapolation
molecules again (references from the cache) and writes ``molecules_report.json`` into the run
folder: the field's metrics by heavy-atom count and the AO Fock MAE by element pair, each pair
with the number of training molecules that hold it, and the out-of-domain count. ``plot`` draws
AO Fock MAE and occupied orbital-energy MAE against training molecules, one line per head.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from nhamil.config import compose_config
from nhamil.domain import _pair_name
from nhamil.errors import InputError
from nhamil.evaluate import load_run, scf_settings, target_errors
from nhamil.orbitals import AtomicBasis
from nhamil.reference import read_frames
from nhamil.reference.scf import run_scf
from nhamil.sources import heavy_atom_counts
from nhamil.train import reference_records, target_from_config


def timing(cfg, n_molecules: int) -> None:
    """Seconds per SCF at the run's level and at B3LYP/def2-SVP for ``n_molecules`` test molecules."""
    frames = read_frames(cfg.data.frames)[cfg.split.test[0] : cfg.split.test[0] + n_molecules]
    levels = {"run level": scf_settings(cfg), "B3LYP/def2-SVP": scf_settings(cfg).__class__(method="rks", xc="b3lyp")}
    seconds = {name: [] for name in levels}
    for atoms in frames:
        for name, settings in levels.items():
            start = time.perf_counter()
            run_scf(atoms, settings)
            seconds[name].append(time.perf_counter() - start)
        heavy = heavy_atom_counts([atoms])[0]
        print(
            f"{atoms.info.get('smiles')}: {heavy} heavy, {len(atoms)} atoms, "
            + ", ".join(f"{name} {s[-1]:.2f} s" for name, s in seconds.items()),
            flush=True,
        )
    run, b3lyp = (float(np.mean(s)) for s in seconds.values())
    print(f"mean s/molecule: run level {run:.2f}, B3LYP/def2-SVP {b3lyp:.2f}; B3LYP / run level = {b3lyp / run:.2f}")


def build(cfg, ranges: list[str]) -> None:
    """References of the frame ranges ``START:STOP`` (in-size file) and ``x:START:STOP``
    (extrapolation file), into the run's cache, each range timed. Every range is checked before
    any is built."""
    target = target_from_config(cfg)
    parsed = [_frame_range(text) for text in ranges]
    files = {"": read_frames(cfg.data.frames), "x": read_frames(cfg.data.extrapolation_frames)}
    for text, (which, start, stop) in zip(ranges, parsed, strict=True):
        frames = files[which]
        used = list(range(start, min(stop, len(frames))))
        began = time.perf_counter()
        reference_records(cfg, frames, used, target)
        seconds = time.perf_counter() - began
        print(f"range {text}: {len(used)} molecules in {seconds:.0f} s ({seconds / len(used):.2f} s each)", flush=True)


def _frame_range(text: str) -> tuple[str, int, int]:
    """("" or "x", start, stop) of ``START:STOP`` or ``x:START:STOP``; ``InputError`` otherwise."""
    parts = text.split(":")
    which, bounds = (parts[0], parts[1:]) if parts[0] == "x" else ("", parts)
    if len(bounds) != 2 or not all(b.isdigit() for b in bounds) or int(bounds[0]) >= int(bounds[1]):
        raise InputError(
            f"frame range {text!r} is not START:STOP or x:START:STOP with START < STOP "
            "(Hydra overrides go after --overrides)"
        )
    return which, int(bounds[0]), int(bounds[1])


#: Heavy-atom bins of the size table: [low, high] inclusive.
SIZE_BINS = ((1, 6), (7, 8), (9, 10), (11, 12), (13, 16), (17, 30))


def pair_counts(frames) -> dict[str, int]:
    """Element pair name ("C-H", "N-N") -> number of molecules of ``frames`` that hold two distinct atoms of it."""
    counts: dict[str, int] = {}
    for atoms in frames:
        present = {
            _pair_name(*sorted((int(a), int(b)))) for k, a in enumerate(atoms.numbers) for b in atoms.numbers[k + 1 :]
        }
        for name in present:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def pair_errors(predicted, targets, frames) -> dict[str, float]:
    """AO matrix-element MAE (µHa) per element pair of the row and column atoms (on-site blocks count
    for the pair of an element with itself)."""
    sums: dict[str, list[float]] = {}
    for matrix, reference, atoms in zip(predicted, targets.matrices, frames, strict=True):
        element = np.repeat(atoms.numbers, [targets.basis.atom_size(int(z)) for z in atoms.numbers])
        error = np.abs(matrix - reference)
        for a in np.unique(atoms.numbers):
            for b in np.unique(atoms.numbers):
                if a <= b:
                    block = error[np.ix_(element == a, element == b)]
                    total = sums.setdefault(_pair_name(int(a), int(b)), [0.0, 0])
                    total[0] += block.sum() * (1 if a == b else 2)
                    total[1] += block.size * (1 if a == b else 2)
    return {name: total / count * 1e6 for name, (total, count) in sorted(sums.items())}


def errors_of(model, frames, records) -> dict:
    """Metrics of ``frames`` (with their reference ``records``): overall, by heavy-atom bin and by
    element pair, and the domain check."""
    basis = AtomicBasis.from_pyscf(model.target.scf.basis, sorted({int(z) for a in frames for z in a.numbers}))
    targets = model.target.make(records, basis)
    predicted = [p.numpy() for p in model.predict(frames, check_domain=False)]
    heavy = heavy_atom_counts(frames)
    by_size = {}
    for low, high in SIZE_BINS:
        chosen = [k for k, n in enumerate(heavy) if low <= n <= high]
        if chosen:
            subset = targets.subset(chosen)
            by_size[f"{low}-{high}"] = {
                "n_molecules": len(chosen),
                **target_errors([predicted[k] for k in chosen], subset, [frames[k].numbers for k in chosen]),
            }
    reports = model.domain_reports(frames) or []
    return {
        "overall": target_errors(predicted, targets, [a.numbers for a in frames]),
        "by_heavy_atoms": by_size,
        "by_element_pair_uha": pair_errors(predicted, targets, frames),
        "pair_molecules": pair_counts(frames),
        "n_out_of_domain": sum(not r.in_domain for r in reports),
        "out_of_domain_reasons": [r.reason for r in reports if not r.in_domain][:10],
    }


def report(run_dir: Path) -> dict:
    """``molecules_report.json`` of one run folder (test and extrapolation sets), printed as tables."""
    model, cfg = load_run(run_dir)
    frames = read_frames(cfg.data.frames)
    sets = {"test": [frames[i] for i in range(*cfg.split.test)]}
    if cfg.data.extrapolation_frames:
        sets["extrapolation"] = read_frames(cfg.data.extrapolation_frames)
    train_frames = [frames[i] for i in range(*cfg.split.train)]
    result = {"n_train": len(train_frames), "head": cfg.head.kind, "train_pair_molecules": pair_counts(train_frames)}
    for name, chosen in sets.items():
        records = reference_records(cfg, chosen, list(range(len(chosen))), model.target)
        result[name] = errors_of(model, chosen, [records[k] for k in range(len(chosen))])
    (Path(run_dir) / "molecules_report.json").write_text(json.dumps(result, indent=1))
    _print_tables(result)
    return result


def _print_tables(result: dict) -> None:
    """Markdown tables of :func:`report`'s result."""
    columns = ("fock_ao_mae_uha", "occupied_energy_mae_mev", "gap_mae_mev", "orbital_similarity_pct")
    print(f"| set | heavy atoms | molecules | {' | '.join(columns)} |\n|{'---|' * (len(columns) + 3)}")
    for name in ("test", "extrapolation"):
        if name in result:
            rows = {"all": {"n_molecules": "", **result[name]["overall"]}, **result[name]["by_heavy_atoms"]}
            for size, errors in rows.items():
                print(
                    f"| {name} | {size} | {errors['n_molecules']} | " + " | ".join(f"{errors[c]:.4g}" for c in columns)
                )
    pairs = result["test"]["by_element_pair_uha"]
    print(
        "\n| element pair | test MAE (µHa) | extrapolation MAE (µHa) | training molecules holding it |"
        "\n|---|---|---|---|"
    )
    for pair, error in pairs.items():
        extrapolated = result.get("extrapolation", {}).get("by_element_pair_uha", {}).get(pair, float("nan"))
        print(f"| {pair} | {error:.1f} | {extrapolated:.1f} | {result['train_pair_molecules'].get(pair, 0)} |")
    if "extrapolation" in result:
        print(f"extrapolation set: {result['extrapolation']['n_out_of_domain']} out of domain")


#: The chemical-space issue's aims at 1,000 training molecules: AO Fock MAE (µHa), occupied energies (meV).
ISSUE_TARGETS = (300.0, 100.0)


def model_label(metrics: dict) -> str:
    """The head kind of a run's metrics, with "+ Hartree" when it solves the Hartree term."""
    return metrics["head"] + (" + Hartree" if metrics.get("hartree") else "")


def plot(run_dirs: list[Path], output: Path) -> None:
    """AO Fock MAE (µHa) and occupied orbital-energy MAE (meV) of the test set against the number
    of training molecules, one line per model kind (:func:`model_label`), from the runs' metrics.json; linear
    error axes from zero, so that a flattening curve looks flat, with the issue's aims dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[tuple[int, float, float]]] = {}
    for run in run_dirs:
        metrics = json.loads((run / "metrics.json").read_text())
        curves.setdefault(model_label(metrics), []).append(
            (metrics["n_train"], metrics["fock_ao_mae_uha"], metrics["occupied_energy_mae_mev"])
        )
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for head, points in sorted(curves.items()):
        n, fock, occupied = zip(*sorted(points), strict=True)
        axes[0].plot(n, fock, "o-", label=head)
        axes[1].plot(n, occupied, "o-", label=head)
    sizes = sorted({n for points in curves.values() for n, _, _ in points})
    panels = zip(axes, ("AO Fock MAE (µHa)", "occupied orbital-energy MAE (meV)"), ISSUE_TARGETS, strict=True)
    for ax, label, target in panels:
        ax.axhline(target, color="gray", linestyle="--", label=f"aim at 1,000 molecules ({target:g})")
        ax.set(xscale="log", xlabel="training molecules", ylabel=label)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.minorticks_off()
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("molecules (NCI, <= 12 heavy atoms), DF-RHF/def2-SVP, unseen test molecules")
    figure.tight_layout()
    figure.savefig(output, dpi=120)
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("timing", "build", "report", "plot"))
    parser.add_argument("ranges", nargs="*", help="build: START:STOP or x:START:STOP frame ranges; else run folders")
    parser.add_argument("-o", "--output", type=Path, default=Path("molecules_learning_curve.png"), help="plot: PNG")
    parser.add_argument("--molecules", type=int, default=6, help="timing: how many test molecules")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides of +experiment=molecules")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command in ("report", "plot"):
        runs = [Path(run) for run in args.ranges]
        return plot(runs, args.output) if args.command == "plot" else [report(run) for run in runs]
    cfg = compose_config(["+experiment=molecules", "data.n_workers=1", *args.overrides])
    timing(cfg, args.molecules) if args.command == "timing" else build(cfg, args.ranges)


if __name__ == "__main__":
    main()
