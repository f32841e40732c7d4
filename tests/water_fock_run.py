"""A tiny trained water run (full orthogonal Fock, def2-SVP) shared by the evaluation, predict,
SCF-guess and notebook tests: 10 training frames, small features. The run and the reference
cache live in the test session's base temporary folder, so they are made once per session."""

from __future__ import annotations

from pathlib import Path

from paper_data import WATER

from nhamil.config import compose_config
from nhamil.train import train


def reference_cache(tmp_path_factory) -> Path:
    """The session's reference cache folder."""
    return tmp_path_factory.getbasetemp() / "reference-cache"


def water_fock_run(tmp_path_factory) -> Path:
    """The session's run folder, trained on first use (tests must not write into it)."""
    run_dir = tmp_path_factory.getbasetemp() / "water-fock-run"
    if not (run_dir / "model.pt").exists():
        make_water_fock_run(run_dir, reference_cache(tmp_path_factory))
    return run_dir


def make_water_fock_run(run_dir: Path, cache_dir: Path) -> Path:
    """Train on frames 0-9, test on 10-11, write a run folder like ``python -m nhamil.train``
    does (``model.pt``, ``metrics.json``, ``.hydra/config.yaml``) and return it."""
    train_water_run(run_dir, cache_dir, "+experiment=water_fock")
    return run_dir


def train_water_run(run_dir: Path, cache_dir: Path, *overrides: str) -> dict:
    """Train a small water run of the given experiment ``overrides`` on frames 0-9 (test 10-11,
    3 x 3 features) into ``run_dir`` with its ``.hydra/config.yaml``; its metrics."""
    cfg = compose_config(
        [
            *overrides,
            "split.train=[0,10]",
            "split.test=[10,12]",
            f"data.frames={WATER}",
            f"data.cache_dir={cache_dir}",
            "data.n_workers=1",
            "features.density.max_radial=3",
            "features.density.max_angular=3",
        ]
    )
    return train(cfg, run_dir)
