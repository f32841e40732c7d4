"""What the self-consistent Hartree term buys on molecules from SMILES, against the same model without it.

    OPENBLAS_NUM_THREADS=1 NHAMIL_CACHE_DIR=/work/cache/smiles \
        python benchmarks/hartree_remainder.py --out /tmp/hartree [--overrides split.train=[200,400] ...]

Trains ``+experiment=molecules`` twice with :func:`nhamil.train.train` (same frames, features,
head and minao baseline; by default training molecules 200-299, test molecules 0-99): once as it
is, once with ``hartree.enabled=true``, so that the heads learn F_ref - F[D_minao] -
J[P_ref - P_minao] and prediction solves F = F[D_minao] + heads + J[P(F) - P_minao]. Prints the
field's metrics of both runs' test molecules (AO Fock MAE, occupied orbital energies in meV and
µHa, HOMO-LUMO gap, orbital similarity), the fit time, and for the Hartree model the median
seconds per molecule of its heads apart from its loop, the loop's J builds (median, max) and
the fraction of molecules whose occupied energies it improves. References and baselines come
from the run's cache (``data.cache_dir``), as for ``python -m nhamil.train``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import ase
import numpy as np
from tqdm import tqdm

from nhamil.config import compose_config
from nhamil.evaluate import load_run, run_predictions, split_frames, target_errors
from nhamil.model import HamiltonianModel
from nhamil.train import train

#: The two runs: name -> extra overrides.
VARIANTS = {"local heads": [], "heads + Hartree loop": ["hartree.enabled=true"]}
#: The split, without the size-extrapolation set (its references take 20 s per molecule).
SPLIT = ["split.train=[200,300]", "split.test=[0,100]", "data.extrapolation_frames=null"]
COLUMNS = ("fock_ao_mae_uha", "occupied_energy_mae_mev", "occupied_energy_mae_uha", "gap_mae_mev")


def run_folder(out: Path, name: str) -> Path:
    """The folder of the run ``name`` under ``out``."""
    return out / name.replace(" ", "_").replace("+", "plus")


def run_variant(out: Path, name: str, overrides: list[str]) -> dict:
    """metrics.json of the run ``name`` (trained unless its folder already holds it), with the fit seconds."""
    run_dir = run_folder(out, name)
    if (run_dir / "metrics.json").exists():
        return json.loads((run_dir / "metrics.json").read_text())
    cfg = compose_config(["+experiment=molecules", "data.n_workers=1", *SPLIT, *overrides, *VARIANTS[name]])
    return train(cfg, run_dir)


def loop_costs(run_dir: Path, frames: list[ase.Atoms]) -> tuple[dict, list[np.ndarray]]:
    """Median s/molecule of the heads (baseline apart) and of the Hartree loop, the loop's
    J builds (median, max), over the test molecules ``frames``; and their predicted matrices."""
    model, _ = load_run(run_dir)
    baselines = model.baselines(frames)
    heads, term = _without_hartree(model), model.hartree_term()
    heads_seconds, loop_seconds, cycles, predicted = [], [], [], []
    for index, atoms in enumerate(tqdm(frames, desc="timed predictions", unit="molecule")):
        one = baselines.subset([index])
        start = time.perf_counter()
        fixed = heads.predict([atoms], baselines=one, check_domain=False)[0].numpy()
        heads_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        solution = term.solve(fixed, atoms, one.overlaps[0], label=str(index))
        loop_seconds.append(time.perf_counter() - start)
        cycles.append(solution.cycles)
        predicted.append(solution.fock)
    costs = {
        "heads_s_per_molecule": float(np.median(heads_seconds)),
        "loop_s_per_molecule": float(np.median(loop_seconds)),
        "loop_j_builds_median": float(np.median(cycles)),
        "loop_j_builds_max": int(max(cycles)),
    }
    return costs, predicted


def _without_hartree(model: HamiltonianModel) -> HamiltonianModel:
    """The same heads and baseline, without the loop."""
    state = model.state_dict()
    state["hartree"] = None
    return HamiltonianModel.from_state_dict(state)


def improved_fraction(local_dir: Path, frames: list[ase.Atoms], hartree_predicted: list[np.ndarray]) -> float:
    """Fraction of the test molecules ``frames`` whose occupied-energy MAE the Hartree model's
    predictions (``hartree_predicted``, in the same order) lower against the local run's."""
    model, cfg = load_run(local_dir)
    records, local_predicted = run_predictions(model, cfg, frames)
    targets = model.target.make(records, model.basis)

    def occupied_mev(matrix: np.ndarray, k: int) -> float:
        return target_errors([matrix], targets.subset([k]), [frames[k].numbers])["occupied_energy_mae_mev"]

    pairs = enumerate(zip(local_predicted, hartree_predicted, strict=True))
    better = [occupied_mev(hartree, k) < occupied_mev(local, k) for k, (local, hartree) in pairs]
    return float(np.mean(better))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the two runs (reused when present)")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides of +experiment=molecules")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metrics = {name: run_variant(args.out, name, args.overrides) for name in VARIANTS}
    local_dir, hartree_dir = (run_folder(args.out, name) for name in VARIANTS)
    frames = split_frames(load_run(local_dir)[1], "test")
    costs, hartree_predicted = loop_costs(hartree_dir, frames)
    improved = improved_fraction(local_dir, frames, hartree_predicted)
    print(
        f"\n{metrics['local heads']['n_train']} training molecules, {metrics['local heads']['n_test']} test molecules\n"
        f"| model | {' | '.join(COLUMNS)} | orbital_similarity_pct | fit s |\n|{'---|' * (len(COLUMNS) + 3)}"
    )
    for name, values in metrics.items():
        print(
            f"| {name} | "
            + " | ".join(f"{values[c]:.4g}" for c in COLUMNS)
            + f" | {values['orbital_similarity_pct']:.3f} | {values['fit_seconds']:.0f} |"
        )
    print(
        f"Hartree model: heads {costs['heads_s_per_molecule']:.3f} s/molecule, loop {costs['loop_s_per_molecule']:.2f} "
        f"s/molecule, J builds median {costs['loop_j_builds_median']:.0f} (max {costs['loop_j_builds_max']}); "
        f"occupied energies improved for {improved:.0%} of the test molecules"
    )


if __name__ == "__main__":
    main()
