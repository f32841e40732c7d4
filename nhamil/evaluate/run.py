"""Evaluate a training run on a data set: predictions -> physics metrics, JSON and plots.

A run folder is what ``python -m nhamil.train`` writes: ``model.pt`` and Hydra's resolved
config ``.hydra/config.yaml`` (level of theory, data file, split, cache folder). The model's
checkpoint records its target's level of theory; a run whose config says another is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import ase
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..model import HamiltonianModel
from ..orbitals import AtomicBasis
from ..predict import predict_matrices
from ..reference import ReferenceRecord, ScfSettings, build_reference_set, read_frames
from ..reference.baseline_cache import cached_baselines
from ..sources import register_resolvers
from .metrics import target_errors
from .physics import StructureEvaluation, evaluate_structure, summarize
from .plots import dipole_parity, energy_parity, frontier_parity


def load_run(run_dir: str | Path) -> tuple[HamiltonianModel, DictConfig]:
    """The trained model and the config of a run folder (its ``${nhamil.data:NAME}`` paths resolve
    to the packaged data files when read, ``${nhamil.molecules:...}`` to the cached SMILES
    structures); ``FileNotFoundError`` naming what is missing, ``InputError`` naming both if the
    config's level of theory is not the one the model was trained at."""
    run_dir = Path(run_dir)
    paths = [run_dir / "model.pt", run_dir / ".hydra" / "config.yaml"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a complete nhamil run folder: missing {missing}")
    register_resolvers()
    model, cfg = HamiltonianModel.load(paths[0]), OmegaConf.load(paths[1])
    model.target.check_level_of_theory(scf_settings(cfg), f"the config {paths[1]}")
    return model, cfg


def scf_settings(cfg: DictConfig) -> ScfSettings:
    """The level of theory of a run's config (its ``reference`` section)."""
    return ScfSettings(**OmegaConf.to_container(cfg.reference))


def split_frames(cfg: DictConfig, split: str, frames_path: str | Path | None = None) -> list[ase.Atoms]:
    """The structures of one split of a run's config (``"train"`` or ``"test"``), in order:
    frames ``cfg.split[split]`` of ``frames_path`` (default: the run's own ``data.frames``)."""
    first, end = cfg.split[split]
    return read_frames(frames_path or cfg.data.frames, f"{first}:{end}")


def run_predictions(
    model: HamiltonianModel,
    cfg: DictConfig,
    frames: Sequence[ase.Atoms],
    cache_dir: str | Path | None = None,
    n_workers: int = 1,
) -> tuple[list[ReferenceRecord], list[np.ndarray]]:
    """The PySCF references (computed where missing) and the model's predicted matrices of
    ``frames`` (Å) for a run loaded by :func:`load_run`, both through ``cache_dir`` (default: the
    run's): the model's baseline comes from the per-structure baseline cache, where training left
    those of its own frames, and is computed and kept there by ``n_workers`` processes where not."""
    settings = scf_settings(cfg)
    model.check_inputs(frames, settings.basis)
    cache_dir = cache_dir or cfg.data.cache_dir
    records = build_reference_set(frames, settings, model.target.projection, cache_dir, n_workers=n_workers)
    stage = model.baseline_stage()
    baselines = None if stage is None else cached_baselines(stage, frames, cache_dir, n_workers, progress=True)
    return records, predict_matrices(model, frames, baselines=baselines, checked=True)


def evaluate_predictions(
    model: HamiltonianModel,
    predicted: Sequence[np.ndarray],
    frames: Sequence[ase.Atoms],
    records: Sequence[ReferenceRecord],
    settings: ScfSettings,
    margin: float = 1.0,
    progress: bool = True,
) -> tuple[list[StructureEvaluation], dict]:
    """Per-structure evaluations and the flat metrics (:func:`~nhamil.evaluate.metrics.target_errors`:
    matrix errors in µHa overall and per block family, the field's AO Fock metrics for Fock targets;
    orbital energies in meV, dipoles in Debye) of ``predicted`` target matrices."""
    model.target.check_level_of_theory(settings, "the evaluation's settings")
    species = sorted({int(z) for atoms in frames for z in atoms.numbers})
    targets = model.target.make(records, AtomicBasis.from_pyscf(settings.basis, species))
    evaluations = [
        evaluate_structure(p, r, a, model.target, settings, margin)
        for p, r, a in tqdm(
            list(zip(predicted, records, frames, strict=True)), desc="evaluate", unit="structure", disable=not progress
        )
    ]
    metrics = {
        "n_structures": len(frames),
        "target": model.target.name,
        "basis": model.basis.name,
        **target_errors(predicted, targets, [a.numbers for a in frames]),
        **summarize(evaluations),
    }
    return evaluations, metrics


def write_report(folder: str | Path, evaluations: Sequence[StructureEvaluation], metrics: dict) -> list[Path]:
    """``evaluation.json`` and the parity plots (PNG) in ``folder``; returns the paths."""
    folder = Path(folder)
    with atomic_path(folder / "evaluation.json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2) + "\n")
    paths = [
        folder / "evaluation.json",
        energy_parity(
            [e.predicted.energies for e in evaluations],
            [e.reference.energies for e in evaluations],
            [e.reference.n_occupied for e in evaluations],
            folder / "orbital_energies.png",
            title=f"{metrics['target']}, {metrics['n_structures']} structures",
        ),
        frontier_parity(evaluations, folder / "frontier_levels.png"),
    ]
    if evaluations[0].dipole_predicted is not None:
        paths.append(dipole_parity(evaluations, folder / "dipole.png"))
    return paths
