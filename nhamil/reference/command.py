"""The reference build command: ``python -m nhamil.reference`` (config ``configs/reference_build.yaml``).

It computes the PySCF references of ``data.frames`` (frames ``index``) at the ``reference`` level
of theory into ``data.cache_dir``, the cache that ``nhamil.train`` reads, as shard ``shard`` of
``n_shards`` (``nhamil.reference.build``). Sharded over a cluster by Hydra's multirun::

    python -m nhamil.reference -m shard=0,1,2,3 n_shards=4 hydra/launcher=slurm data.cache_dir=/shared/cache

Each shard prints a progress bar and its summary, and writes the summary to ``summary.json`` in
its run folder. Exit status 2 with one line (``nhamil.reference: error: ...``) for bad input,
structures whose computation failed, or unconverged SCFs (unless ``data.allow_unconverged``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from ase.io.formats import string2index
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from nhamil.atomic import atomic_path
from nhamil.config import CONFIG_DIR, DataConfig, ProjectionConfig, check_known_keys
from nhamil.errors import DataFileError, InputError, reported_as_one_line
from nhamil.reference.build import ShardSummary, build_shard, check_shard_settings
from nhamil.reference.frames import read_frames
from nhamil.reference.settings import ProjectionSettings, ScfSettings
from nhamil.reference.store import UnconvergedSCFError, _listed
from nhamil.schemas import ReferenceConfig
from nhamil.sources import register_resolvers
from nhamil.structures import check_geometries

log = logging.getLogger(__name__)

PROGRAM = "nhamil.reference"


@dataclass
class ReferenceBuildConfig:
    """One shard of a reference build: the structures (``data.frames``, frames ``index`` as
    ``ase.io.read`` takes it), the level of theory and projection (together they name the cache
    folder), ``shard`` (0 <= shard < ``n_shards``), ``threads_per_worker`` (BLAS/OpenMP threads of
    each of the ``data.n_workers`` PySCF processes), ``stale_after_s`` (seconds after which an
    unrefreshed claim is taken over), ``retry_failed`` (recompute structures that failed before)."""

    data: DataConfig = field(default_factory=DataConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    index: str = ":"
    shard: int = 0
    n_shards: int = 1
    threads_per_worker: int = 1
    stale_after_s: float = 600.0
    retry_failed: bool = False
    progress: bool = True


class BuildFailedError(InputError):
    """Some structures of a shard failed; the message names their frames and the first error."""


def register_build_configs() -> None:
    """Put ``reference_build_schema`` into Hydra's ConfigStore and add the data configs'
    resolvers (idempotent)."""
    register_resolvers()
    ConfigStore.instance().store(name="reference_build_schema", node=ReferenceBuildConfig)


def compose_build_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config that ``python -m nhamil.reference OVERRIDES`` would run, for scripts and tests."""
    register_build_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("reference_build", overrides=list(overrides))


def frames_path(cfg: DictConfig) -> str:
    """``data.frames``, resolved; a missing packaged file is a ``DataFileError`` naming it."""
    try:
        return str(cfg.data.frames)
    except InterpolationResolutionError as err:
        cause = str(err).splitlines()[0].split("resolving interpolation: ", 1)[-1]
        raise DataFileError(f"data.frames: {cause}") from None


def selected_frames(n_frames: int, index: str, path: str) -> list[int]:
    """Frame numbers of the ``n_frames`` of ``path`` that ``index`` (``":"``, ``"0:100"``, ``"5"``) selects."""
    try:
        selection = string2index(str(index))
        chosen = [range(n_frames)[selection]] if isinstance(selection, int) else list(range(n_frames)[selection])
    except (ValueError, IndexError, TypeError):
        raise InputError(
            f"index={index!r} selects no frames of the {n_frames} of {path}; give an integer or a slice "
            "('0:100', '::10'; frames count from 0)"
        ) from None
    if not chosen:
        raise InputError(f"index={index!r} selects none of the {n_frames} frames of {path}")
    return chosen


def build_from_config(cfg: DictConfig, run_dir: str | Path) -> ShardSummary:
    """Run the shard ``cfg`` describes (see :class:`ReferenceBuildConfig`); write ``summary.json``
    into ``run_dir``; raise ``BuildFailedError`` or ``UnconvergedSCFError`` after the summary."""
    check_known_keys(cfg)
    check_shard_settings(cfg.shard, cfg.n_shards, cfg.data.n_workers, cfg.threads_per_worker, cfg.stale_after_s)
    path = frames_path(cfg)
    frames = read_frames(path)
    chosen = selected_frames(len(frames), cfg.index, path)
    frames = [frames[i] for i in chosen]
    check_geometries(frames, labels=chosen)
    scf = ScfSettings(**OmegaConf.to_container(cfg.reference))
    summary = build_shard(
        frames,
        scf,
        ProjectionSettings(**OmegaConf.to_container(cfg.projection)),
        cfg.data.cache_dir,
        labels=chosen,
        shard=cfg.shard,
        n_shards=cfg.n_shards,
        n_workers=cfg.data.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        stale_after_s=cfg.stale_after_s,
        retry_failed=cfg.retry_failed,
        rebuild_damaged=cfg.data.rebuild_damaged,
        progress=cfg.progress,
    )
    _write_summary(summary, Path(run_dir), path)
    _raise_for_problems(summary, cfg.data.allow_unconverged)
    return summary


def _write_summary(summary: ShardSummary, run_dir: Path, frames: str) -> None:
    """``summary.json`` (atomically) in ``run_dir``, and the summary line in the log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(run_dir / "summary.json") as temporary:
        temporary.write_text(json.dumps({"frames": frames, **summary.to_dict()}, indent=2) + "\n")
    log.info(summary.line())


def _raise_for_problems(summary: ShardSummary, allow_unconverged: bool) -> None:
    """``BuildFailedError`` naming the failed frames; ``UnconvergedSCFError`` unless allowed."""
    if summary.failed:
        frames = [failure["frame"] for failure in summary.failed]
        raise BuildFailedError(
            f"shard {summary.shard}/{summary.n_shards}: {len(frames)} structure(s) failed, frame(s) {_listed(frames)} "
            f"of the data file (first: {summary.failed[0]['error']}); fix the cause and rerun with retry_failed=true"
        )
    if summary.not_converged and not allow_unconverged:
        raise UnconvergedSCFError(summary.not_converged, Path(summary.folder))


#: At import: Hydra's submitit launcher composes each job's config in a process that imports this
#: module to unpickle ``main``, and needs the schema there too.
register_build_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="reference_build")
def main(cfg: DictConfig) -> None:
    """Hydra wrapper of :func:`build_from_config`, errors reported as one line."""
    with reported_as_one_line(PROGRAM):
        build_from_config(cfg, HydraConfig.get().runtime.output_dir)
