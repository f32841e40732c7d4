"""The DCE property experiment: trajectory -> models -> metrics.json and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.data import atomic_masses
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.evaluate.run import scf_settings
from nhamil.features import DensitySettings
from nhamil.heads import KernelSettings, RidgeSettings
from nhamil.properties.compare import (
    Molecule,
    cartesian_model,
    equivariance_error,
    equivariant_model,
    errors,
    frame_jumps,
    rpr_model,
    smoothness,
    split_indices,
)
from nhamil.properties.data import Trajectory, TrajectorySettings, build_trajectory, chlorine_dihedral, dichloroethane
from nhamil.properties.equivariant import EquivariantPropertyModel
from nhamil.properties.frames import principal_frames
from nhamil.properties.plots import plot_learning_curves, plot_trajectory

TARGETS = {"dipole": "dipoles", "polarizability": "polarizabilities"}


def trajectory_settings(cfg: DictConfig) -> TrajectorySettings:
    """The ``properties.trajectory`` node as :class:`TrajectorySettings`."""
    scf = scf_settings(cfg)
    return TrajectorySettings(
        timestep_fs=cfg.timestep_fs,
        temperature_K=cfg.temperature_K,
        friction=cfg.friction,
        chunk_size=cfg.chunk_size,
        seed=cfg.seed,
        scf=scf,
    )


def make_models(cfg: DictConfig, molecule: Molecule, seed: int) -> dict:
    """name -> model (see :mod:`nhamil.properties.compare`)."""
    eq = cfg.equivariant
    head = KernelSettings(zeta=eq.zeta, seed=seed) if eq.head == "kernel" else RidgeSettings(seed=seed)
    if eq.head not in ("ridge", "kernel"):
        raise ValueError(f"equivariant.head must be 'ridge' or 'kernel', got {eq.head!r}")
    density = DensitySettings(**OmegaConf.to_container(eq.density))
    species = tuple(sorted({int(z) for z in molecule.numbers}))
    equivariant = EquivariantPropertyModel(
        species=species, density=density, correlation_order=eq.correlation_order, head=head
    )
    return {
        "rpr": rpr_model(molecule),
        "rpr_reference": rpr_model(molecule, "reference"),
        "equivariant": equivariant_model(molecule, equivariant),
        "cartesian": cartesian_model(molecule),
        "cartesian_augmented": cartesian_model(molecule, cfg.n_augment, seed),
    }


def compare(cfg: DictConfig, trajectory: Trajectory, seed: int = 0) -> tuple[dict, dict]:
    """(metrics "property/model/name" -> float, predictions property -> model -> (n_test, ...))."""
    numbers = trajectory.numbers
    molecule = Molecule(numbers, atomic_masses[numbers], dichloroethane().positions)
    models = make_models(cfg, molecule, seed)
    n_frames = len(trajectory.positions)
    metrics, predictions = {}, {}
    jobs = [(prop, name) for prop in TARGETS for name in models]
    for prop, name in tqdm(jobs, desc="property models", unit="model"):
        targets = getattr(trajectory, TARGETS[prop])
        for n_train in sorted(set(cfg.learning_curve) | {cfg.n_train}):
            train, test = split_indices(n_frames, n_train, cfg.n_test)
            predict = models[name](trajectory.positions[train], targets[train])
            predicted = predict(trajectory.positions[test])
            metrics.update({f"{prop}/{name}/n{n_train}/{k}": v for k, v in errors(predicted, targets[test]).items()})
        predictions.setdefault(prop, {})[name] = predicted
        metrics.update({f"{prop}/{name}/{k}": v for k, v in errors(predicted, targets[test]).items()})
        metrics.update({f"{prop}/{name}/{k}": v for k, v in smoothness(predicted, targets[test]).items()})
        metrics[f"{prop}/{name}/equivariance_rms"] = equivariance_error(
            predict, trajectory.positions[test], cfg.n_rotations, seed
        )
    return metrics, predictions


def frame_statistics(trajectory: Trajectory, test: np.ndarray) -> tuple[dict, np.ndarray]:
    """Counts of near-degenerate frames and abrupt frame changes in the test block (and the
    latter's indices); gauche fraction and gauche/anti changes over the whole trajectory."""
    masses = atomic_masses[trajectory.numbers]
    rotations, _, degenerate = principal_frames(trajectory.positions[test], masses)
    jumps = frame_jumps(rotations)
    gauche = np.abs(chlorine_dihedral(trajectory.positions)) < 120.0
    return {
        "frames/degenerate": int(degenerate.sum()),
        "frames/jumps": len(jumps),
        "frames/gauche_fraction": float(gauche.mean()),
        "frames/conformer_changes": int(np.diff(gauche).sum()),
    }, jumps


def train_properties(cfg: DictConfig, run_dir: str | Path, seed: int = 0) -> dict[str, float]:
    """Run the comparison described by the ``properties`` config node; write ``metrics.json``,
    ``learning_curves.png`` and ``trajectory.png`` into ``run_dir``; return the metrics."""
    run_dir = Path(run_dir)
    trajectory = build_trajectory(trajectory_settings(cfg.trajectory), cfg.trajectory.n_frames, cfg.cache_dir)
    metrics, predictions = compare(cfg, trajectory, seed)
    _, test = split_indices(len(trajectory.positions), cfg.n_train, cfg.n_test)
    counts, jumps = frame_statistics(trajectory, test)
    metrics.update(counts)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    plot_learning_curves(metrics, run_dir / "learning_curves.png")
    plot_trajectory(trajectory, test, predictions, jumps, run_dir / "trajectory.png")
    return metrics
