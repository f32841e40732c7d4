"""The field's metrics of a run's test predictions before and after one damped Fock build.

    OPENBLAS_NUM_THREADS=2 python benchmarks/refinement.py RUN_DIR --mixing 0.1 0.2 0.3 0.5 1 --onsite-mixing 0.2

For a full Fock run of ``python -m nhamil.train`` (``model.pt``, ``.hydra/config.yaml``), predicts
its test frames (the first ``--n-test`` of them; the model's baseline read from the run's
baseline cache), builds F[P(F_pred)] once per frame at the references' level
(:mod:`nhamil.evaluate.refinement`, timed) and reports, for the model and for each mixing beta,
(1 - beta) F + beta F[P(F)]: AO Fock MAE, occupied orbital energies, gap, psi and the errors per
block family. ``--onsite-mixing`` adds rows whose on-site blocks take each of those betas while
the pairs take ``--mixing``'s. ``--select-frames K`` picks, on the first K test frames, the row of
smallest AO Fock MAE among those whose occupied-energy MAE is not above the model's, and reports
it with the model on the remaining frames, so the choice of beta is not made on the frames it is
scored on. Writes ``benchmarks/results/refinement_<run folder name>.json`` and a PNG of the
errors against beta beside it, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nhamil.atomic import atomic_path  # noqa: E402
from nhamil.evaluate import load_run, run_predictions, scf_settings, split_frames, target_errors  # noqa: E402
from nhamil.evaluate.refinement import Mixing, check_refinable, mixed, rebuilt_predictions  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COLUMNS = (
    ("fock_ao_mae_uha", "AO F MAE (µHa)", "{:.1f}"),
    ("occupied_energy_mae_uha", "occ. eps (µHa)", "{:.0f}"),
    ("occupied_energy_mae_mev", "occ. eps (meV)", "{:.2f}"),
    ("gap_mae_mev", "gap (meV)", "{:.0f}"),
    ("orbital_similarity_pct", "psi (%)", "{:.3f}"),
    ("on_site_mae_uha", "on-site", "{:.0f}"),
    ("same_element_plus_mae_uha", "+", "{:.0f}"),
    ("same_element_minus_mae_uha", "-", "{:.0f}"),
    ("different_element_mae_uha", "hetero", "{:.0f}"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--mixing", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 1.0])
    parser.add_argument("--onsite-mixing", type=float, nargs="*", default=[], help="betas of the on-site blocks")
    parser.add_argument("--select-frames", type=int, help="choose beta on this many test frames, score on the rest")
    parser.add_argument("--n-test", type=int, help="the first this many test frames (default: all)")
    parser.add_argument("--cache-dir", help="reference and baseline cache (default: the run's)")
    return parser


def main() -> None:
    args = _parser().parse_args()
    model, cfg = load_run(args.run_dir)
    check_refinable(model)
    settings = scf_settings(cfg)
    frames = split_frames(cfg, "test")[: args.n_test]
    records, predicted = run_predictions(model, cfg, frames, args.cache_dir)
    targets = model.target.make(records, model.basis)
    numbers = [atoms.numbers for atoms in frames]
    start = time.perf_counter()
    overlaps = [record.overlap for record in records]
    rebuilt = rebuilt_predictions(predicted, frames, overlaps, model.basis, settings, model.target.orthogonal)
    build_seconds = (time.perf_counter() - start) / len(frames)
    mixings = _mixings(args.mixing, args.onsite_mixing)
    rows = _rows(predicted, rebuilt, targets, numbers, model.basis, mixings, range(len(frames)))
    report = {"run": str(args.run_dir), "n_test": len(frames), "fock_build_seconds": build_seconds, "rows": rows}
    print(f"{len(frames)} test frames; one Fock build {build_seconds:.2f} s per frame")
    _print_table(rows)
    if args.select_frames:
        report["selection"] = _select(predicted, rebuilt, targets, numbers, model.basis, mixings, args.select_frames)
    name = args.run_dir.resolve().name
    with atomic_path(RESULTS / f"refinement_{name}.json") as temporary:
        temporary.write_text(json.dumps(report, indent=1) + "\n")
    _plot(rows, args.mixing, RESULTS / f"refinement_{name}.png")


def _mixings(pairs: list[float], onsite: list[float]) -> dict[str, Mixing]:
    """{row label: Mixing}: each pair beta alone, then each (pair, on-site) combination."""
    rows = {f"beta={beta:g}": Mixing(beta) for beta in pairs}
    rows.update({f"beta={beta:g}, on-site {site:g}": Mixing(beta, site) for beta in pairs for site in onsite})
    return rows


def _rows(predicted, rebuilt, targets, numbers, basis, mixings: dict, frames) -> dict[str, dict]:
    """target_errors of the model and of each mixing over the test frames at positions ``frames``."""
    chosen = list(frames)
    subset = targets.subset(chosen)
    model_matrices = [predicted[k] for k in chosen]
    rebuilt_matrices = [rebuilt[k] for k in chosen]
    atoms = [numbers[k] for k in chosen]
    rows = {"model": target_errors(model_matrices, subset, atoms)}
    for label, mixing in mixings.items():
        rows[label] = target_errors(mixed(model_matrices, rebuilt_matrices, mixing, basis, atoms), subset, atoms)
    return rows


def _select(predicted, rebuilt, targets, numbers, basis, mixings: dict, n_select: int) -> dict:
    """The mixing chosen on the first ``n_select`` frames, scored with the model on the rest."""
    chosen = _rows(predicted, rebuilt, targets, numbers, basis, mixings, range(n_select))
    allowed = [
        label
        for label in mixings
        if chosen[label]["occupied_energy_mae_uha"] <= chosen["model"]["occupied_energy_mae_uha"]
    ]
    if not allowed:
        print(f"no mixing keeps the occupied energies of the first {n_select} frames")
        return {"selected": None}
    best = min(allowed, key=lambda label: chosen[label]["fock_ao_mae_uha"])
    scored = _rows(predicted, rebuilt, targets, numbers, basis, {best: mixings[best]}, range(n_select, len(predicted)))
    print(f"chosen on the first {n_select} test frames: {best}; scored on the other {len(predicted) - n_select}:")
    _print_table(scored)
    return {"selected": best, "select_frames": n_select, "scored": scored}


def _print_table(rows: dict) -> None:
    print("| prediction | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for label, errors in rows.items():
        print(f"| {label} | " + " | ".join(form.format(errors[key]) for key, _, form in COLUMNS) + " |")


def _plot(rows: dict, mixings: list[float], path: Path) -> None:
    """AO Fock MAE and occupied-energy MAE (µHa) against beta (one beta for every block), the
    model's as beta = 0."""
    betas = [0.0, *mixings]
    rows = [rows["model"], *(rows[f"beta={beta:g}"] for beta in mixings)]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, key, title in zip(
        axes,
        ("fock_ao_mae_uha", "occupied_energy_mae_uha"),
        ("AO Fock MAE", "occupied orbital energies MAE"),
        strict=True,
    ):
        values = [row[key] for row in rows]
        axis.plot(betas, values, "o-")
        axis.axhline(values[0], color="grey", linestyle=":", label="model alone")
        axis.set(xlabel="mixing beta of F[P(F_pred)]", ylabel="µHa", title=title)
        axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)


if __name__ == "__main__":
    main()
