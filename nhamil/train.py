"""Training entry point: ``python -m nhamil.train +experiment=water``.

Reference data -> targets -> fit -> predict the test frames -> ``metrics.json``, ``model.pt``,
``orbital_energies.png`` and Hydra's resolved config (``.hydra/config.yaml``) in the run folder.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import ase
import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .atomic import atomic_path
from .config import CONFIG_DIR, check_known_keys, register_configs
from .distributed import Shard, process_group
from .errors import InputError, reported_as_one_line
from .evaluate import errors_by_size, orbital_energy_parity, scf_settings, target_errors
from .heads import HeadSettings, settings_from_dict
from .heads.streaming import StreamSettings
from .model import FeatureSettings, HamiltonianModel, check_hartree_target
from .orbitals import AtomicBasis
from .properties import train_properties
from .reference import ProjectionSettings, build_reference_set, read_frames
from .reference.baseline import BaselineMatrices
from .reference.baseline_cache import cached_baselines
from .reference.hartree import HartreeSettings
from .structures import check_geometries
from .targets import Target, TargetSet
from .training import FinetuneSettings, TrainingData, finetune, validation_split

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: str | Path, shard: Shard | None = None) -> dict[str, float]:
    """Run one experiment described by ``cfg`` (see ``nhamil.config.TrainConfig``); write its
    outputs into ``run_dir`` and return the test metrics. ``shard``: this process's part of a
    run on several (:mod:`nhamil.distributed`): the fit and the fine-tuning are shared, rank 0
    alone predicts and writes, and every rank returns its metrics. A ``run_dir`` without
    ``.hydra/config.yaml`` (a call from Python, not the Hydra CLI) gets ``cfg`` written there, so
    that every run folder loads with :func:`nhamil.evaluate.load_run`."""
    shard = shard or Shard()
    run_dir = Path(run_dir)
    check_known_keys(cfg)
    if shard.writes:
        _save_config_unless_present(cfg, run_dir)
    hartree_settings(cfg)
    streaming = _stream_settings(cfg, shard)
    torch.manual_seed(cfg.seed)
    frames = read_frames(cfg.data.frames)
    train_ids, test_ids = _split_ranges(cfg.split, len(frames), cfg.data.frames)
    used = sorted(set(train_ids) | set(test_ids))
    check_geometries([frames[i] for i in used], labels=used)
    _warn_duplicates(frames, train_ids, test_ids)
    target = target_from_config(cfg)
    records = _shared_records(cfg, frames, used, target, shard)
    basis = AtomicBasis.from_pyscf(target.scf.basis, sorted({int(z) for i in used for z in frames[i].numbers}))
    targets = target.make([records[i] for i in used], basis)
    position = {frame: k for k, frame in enumerate(used)}
    train_set, test_set = (targets.subset([position[i] for i in ids]) for ids in (train_ids, test_ids))
    model = _make_model(cfg, targets.basis, basis.shells, target)
    start = time.perf_counter()
    baselines = _shared_baselines(cfg, model, [frames[i] for i in used], shard)
    baseline_seconds, start = time.perf_counter() - start, time.perf_counter()
    train_baselines, test_baselines = (
        _positions(baselines, [position[i] for i in ids]) for ids in (train_ids, test_ids)
    )
    device = shard.device(cfg.device)
    fitted = _first_fit_positions(cfg, len(train_ids))
    fit_frames = [frames[train_ids[k]] for k in fitted]
    matrices = [torch.as_tensor(train_set.matrices[k]) for k in fitted]
    fit_baselines = _positions(train_baselines, fitted)
    model.fit(fit_frames, matrices, device=device, streaming=streaming, shard=shard, baselines=fit_baselines)
    _finetune(cfg, model, [frames[i] for i in train_ids], train_set, train_baselines, run_dir, shard)
    if not shard.writes:
        return shard.from_writer(None)
    metrics = _evaluate_and_write(
        cfg, model, frames, train_ids, (test_ids, test_set, test_baselines), run_dir, (baseline_seconds, start)
    )
    return shard.from_writer(metrics)


def _save_config_unless_present(cfg: DictConfig, run_dir: Path) -> None:
    """Write ``cfg``, unresolved as Hydra writes it, to ``run_dir/.hydra/config.yaml`` (atomically)
    unless that file exists: Hydra's own copy of a CLI run is left as it is."""
    path = run_dir / ".hydra" / "config.yaml"
    if path.exists():
        return
    with atomic_path(path) as temporary:
        OmegaConf.save(cfg, temporary)


def _shared_baselines(
    cfg: DictConfig, model: HamiltonianModel, frames: list[ase.Atoms], shard: Shard
) -> BaselineMatrices | None:
    """The model's baseline of ``frames`` (None without one), from the per-structure baseline cache
    in ``data.cache_dir`` (:mod:`nhamil.reference.baseline_cache`): what is missing is computed once,
    by rank 0 with ``data.n_workers`` processes, while the other ranks wait and then read it."""
    stage = model.baseline_stage()
    if stage is None:
        return None
    if not shard.writes:
        shard.barrier()
    baselines = cached_baselines(stage, frames, cfg.data.cache_dir, n_workers=cfg.data.n_workers, progress=shard.writes)
    if shard.writes:
        shard.barrier()
    return baselines


def _positions(baselines: BaselineMatrices | None, positions: Sequence[int]) -> BaselineMatrices | None:
    return None if baselines is None else baselines.subset(positions)


def _evaluate_and_write(cfg, model, frames, train_ids, test, run_dir: Path, clock: tuple[float, float]):
    """Predict the test frames (``test``: their indices, targets and baselines), write the outputs;
    the metrics. ``clock``: the seconds the baselines took and the time the fit started."""
    test_ids, test_set, test_baselines = test
    baseline_seconds, start = clock
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    test_frames = [frames[i] for i in test_ids]
    predicted = _predicted_keeping_the_fit(model, test_frames, cfg.device, test_baselines, run_dir)
    predict_seconds = (time.perf_counter() - start) / len(test_ids)
    metrics = {
        **target_errors(predicted, test_set, [frames[i].numbers for i in test_ids]),
        "target": cfg.target,
        "head": cfg.head.kind,
        "hartree": model.hartree is not None,
        "onsite_head": (cfg.onsite_head if cfg.get("onsite_head") is not None else cfg.head).kind,
        "n_train": len(train_ids),
        "n_test": len(test_ids),
        "baseline_seconds": baseline_seconds,
        "fit_seconds": fit_seconds,
        "predict_seconds_per_molecule": predict_seconds,
    }
    if cfg.data.extrapolation_frames:
        metrics.update(extrapolation_errors(cfg, model, model.target))
    _write_outputs(run_dir, model, metrics, predicted, test_set, title=f"{cfg.target}, test frames")
    _write_size_table(
        run_dir,
        errors_by_size(
            predicted, test_set.matrices, test_set.n_occupied, [len(frames[i]) for i in test_ids], test_set.overlaps
        ),
    )
    return metrics


def _predicted_keeping_the_fit(
    model: HamiltonianModel, frames: list[ase.Atoms], device: str, baselines: BaselineMatrices | None, run_dir: Path
) -> list[np.ndarray]:
    """The model's predictions of ``frames``, float64 on the CPU. A prediction that fails (a
    Hartree loop that does not converge) keeps the fit: the checkpoint is written first."""
    try:
        return [p.cpu().numpy() for p in model.predict(frames, device=device, baselines=baselines, progress=True)]
    except Exception:
        run_dir.mkdir(parents=True, exist_ok=True)
        model.save(run_dir / "model.pt")
        log.error(f"prediction failed; the fitted model is in {run_dir / 'model.pt'}")
        raise


def _stream_settings(cfg: DictConfig, shard: Shard) -> StreamSettings | None:
    """The fit's streaming settings (``fit.chunk_frames``, ``fit.contraction_frames``,
    ``fit.sums_memory_gb``): None for an in-memory fit in one process."""
    if cfg.fit.chunk_frames is None and shard.world_size == 1:
        for name in ("contraction_frames", "sums_memory_gb"):
            if cfg.fit[name] is not None:
                raise InputError(f"fit.{name} needs a streamed fit: set fit.chunk_frames too")
        return None
    chunk = {} if cfg.fit.chunk_frames is None else {"chunk_frames": cfg.fit.chunk_frames}
    return StreamSettings(**chunk, contraction_frames=cfg.fit.contraction_frames, sums_memory_gb=cfg.fit.sums_memory_gb)


def _shared_records(cfg: DictConfig, frames: list[ase.Atoms], used: list[int], target: Target, shard: Shard) -> dict:
    """:func:`reference_records`, computed by rank 0 first; the other ranks then read its cache."""
    if not shard.writes:
        shard.barrier()
    records = reference_records(cfg, frames, used, target)
    if shard.writes:
        shard.barrier()
    return records


def reference_records(cfg: DictConfig, frames: list[ase.Atoms], used: list[int], target: Target) -> dict:
    """{frame index: ReferenceRecord} of the frames ``used`` of ``frames`` at the target's level of
    theory, computed once into ``cfg.data.cache_dir`` (messages name the frames by their index)."""
    records = build_reference_set(
        [frames[i] for i in used],
        target.scf,
        target.projection,
        cfg.data.cache_dir,
        n_workers=cfg.data.n_workers,
        labels=used,
        allow_unconverged=cfg.data.allow_unconverged,
        rebuild_damaged=cfg.data.rebuild_damaged,
    )
    return dict(zip(used, records, strict=True))


def extrapolation_errors(cfg: DictConfig, model: HamiltonianModel, target: Target) -> dict[str, float]:
    """The test metrics of every structure of ``data.extrapolation_frames`` (a second test set,
    e.g. larger molecules), keys prefixed ``extrapolation/``, with ``extrapolation/n_test`` and
    ``extrapolation/n_out_of_domain`` (structures outside the training domain, see nhamil.domain)."""
    frames = read_frames(cfg.data.extrapolation_frames)
    check_geometries(frames)
    records = reference_records(cfg, frames, list(range(len(frames))), target)
    basis = AtomicBasis.from_pyscf(target.scf.basis, sorted({int(z) for atoms in frames for z in atoms.numbers}))
    targets = target.make([records[i] for i in range(len(frames))], basis)
    baselines = _shared_baselines(cfg, model, frames, Shard())
    predicted = [p.cpu().numpy() for p in model.predict(frames, device=cfg.device, baselines=baselines)]
    reports = model.domain_reports(frames) or []
    errors = {
        **target_errors(predicted, targets, [atoms.numbers for atoms in frames]),
        "n_test": len(frames),
        "n_out_of_domain": sum(not report.in_domain for report in reports),
    }
    return {f"extrapolation/{name}": value for name, value in errors.items()}


def target_from_config(cfg: DictConfig) -> Target:
    """The run's :class:`Target`: ``target`` at the ``reference`` level of theory, with ``projection``."""
    return Target(
        cfg.target,
        scf_settings(cfg),
        ProjectionSettings(**OmegaConf.to_container(cfg.projection)),
    )


def _make_model(cfg: DictConfig, basis: AtomicBasis, species, target: Target | None = None) -> HamiltonianModel:
    features = FeatureSettings.from_dict(OmegaConf.to_container(cfg.features))
    onsite = cfg.get("onsite_head")
    return HamiltonianModel(
        basis,
        species,
        target=target or target_from_config(cfg),
        features=features,
        head=_head_settings(cfg.head, cfg.seed),
        onsite_head=None if onsite is None else _head_settings(onsite, cfg.seed),
        baseline=cfg.baseline,
        pair_cutoff=cfg.pair_cutoff,
        hartree=hartree_settings(cfg),
    )


def hartree_settings(cfg: DictConfig) -> HartreeSettings | None:
    """The model's Hartree term (``hartree``; None unless ``hartree.enabled``), checked before any
    work: a model with one cannot be fine-tuned."""
    if not cfg.hartree.enabled:
        return None
    check_hartree_target(cfg.baseline, target_from_config(cfg))
    if cfg.finetune.epochs:
        raise InputError("a model with hartree.enabled=true cannot be fine-tuned: set finetune.epochs=0")
    settings = OmegaConf.to_container(cfg.hartree)
    settings.pop("enabled")
    return HartreeSettings(**settings)


def _head_settings(node: DictConfig, seed: int) -> HeadSettings:
    """The head settings of a head-group config node, with the run's ``seed``."""
    return settings_from_dict({**OmegaConf.to_container(node), "seed": seed})


def _finetune(
    cfg: DictConfig,
    model: HamiltonianModel,
    frames,
    train_set: TargetSet,
    baselines: BaselineMatrices | None,
    run_dir: Path,
    shard: Shard,
) -> None:
    """Train all heads together (``finetune.epochs`` > 0) on every rank of ``shard``,
    checkpointed and logged in ``run_dir`` by rank 0."""
    settings = _finetune_settings(cfg)
    if settings.epochs:
        data = TrainingData(
            frames,
            [torch.as_tensor(m) for m in train_set.matrices],
            train_set.n_occupied,
            train_set.overlaps,
            baselines,
        )
        finetune(model, data, settings, directory=run_dir, device=shard.device(cfg.device), shard=shard)


def _first_fit_positions(cfg: DictConfig, n_train: int) -> list[int]:
    """Positions (into the training frames) of the frames the heads are first fitted on: all of
    them, or, when fine-tuning follows, all but its validation molecules (the split
    :func:`nhamil.training.finetune` draws with the same seed), so that early stopping judges
    molecules the starting heads have never seen."""
    settings = _finetune_settings(cfg)
    if not settings.epochs:
        return list(range(n_train))
    fitted, _ = validation_split(n_train, settings)
    return fitted.tolist()


def _finetune_settings(cfg: DictConfig) -> FinetuneSettings:
    return FinetuneSettings(**OmegaConf.to_container(cfg.finetune), seed=cfg.seed)


def _split_ranges(split: DictConfig, n_frames: int, path: str) -> tuple[range, range]:
    """The training and test frames of ``split`` (``[start, stop)`` each, absolute indices into
    the ``n_frames`` frames of ``path``); ``InputError`` naming the setting if one is not two
    integers 0 <= start < stop <= n_frames (a negative index would count from the end and a third
    number would be a step), or if they overlap."""
    ranges = []
    for name in ("train", "test"):
        bounds = list(split[name])
        if (
            len(bounds) != 2
            or not all(isinstance(b, int) for b in bounds)
            or not 0 <= bounds[0] < bounds[1] <= n_frames
        ):
            raise InputError(
                f"split.{name}={bounds} must be [start, stop) with 0 <= start < stop <= {n_frames}, "
                f"the number of frames of {path} (absolute frame indices, no step)"
            )
        ranges.append(range(*bounds))
    train_ids, test_ids = ranges
    if set(train_ids) & set(test_ids):
        raise InputError(
            f"training frames {list(split.train)} and test frames {list(split.test)} overlap; "
            "choose disjoint split.train and split.test"
        )
    return train_ids, test_ids


def _warn_duplicates(frames: list[ase.Atoms], train_ids: range, test_ids: range) -> None:
    """Log a warning naming each test frame whose geometry (elements and positions to 1e-6 Å)
    is a training frame's: its errors are then not out-of-sample."""

    def key(atoms: ase.Atoms) -> tuple[bytes, bytes]:
        return atoms.numbers.tobytes(), np.round(atoms.positions, 6).tobytes()

    trained = {}
    for i in train_ids:
        trained.setdefault(key(frames[i]), i)
    pairs = [f"{trained[key(frames[i])]} = {i}" for i in test_ids if key(frames[i]) in trained]
    if pairs:
        log.warning(
            f"{len(pairs)} test frame(s) repeat a training geometry (training = test frame: "
            f"{', '.join(pairs)}); their errors are not out-of-sample"
        )


def _write_outputs(
    run_dir: Path, model: HamiltonianModel, metrics: dict, predicted, reference: TargetSet, title: str
) -> None:
    """A table on screen, metrics.json (atomically), orbital-energy error plot, then the
    checkpoint: a save that fails (a full disk) keeps the metrics."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info(format_metrics(metrics))
    with atomic_path(run_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    orbital_energy_parity(
        predicted,
        reference.matrices,
        reference.n_occupied,
        run_dir / "orbital_energies.png",
        title=title,
        overlaps=reference.overlaps,
    )
    model.save(run_dir / "model.pt")
    log.info(f"outputs in {run_dir}")


def _write_size_table(run_dir: Path, by_size: dict[int, dict[str, float]]) -> None:
    """``errors_by_size.json`` (atomically) and a table on screen, when the test molecules
    differ in size (a data set of many molecules, not one molecule's conformers)."""
    if len(by_size) < 2:
        return
    with atomic_path(run_dir / "errors_by_size.json") as temporary:
        temporary.write_text(json.dumps(by_size, indent=2))
    rows = [
        f"{size:5d}  {errors['n_structures']:9d}  {errors['hamiltonian_mae_uha']:11.1f}  "
        f"{errors['occupied_energy_mae_mev']:20.2f}"
        for size, errors in by_size.items()
    ]
    log.info("\n".join(["atoms  molecules  H MAE (µHa)  occupied E MAE (meV)", *rows]))


def format_metrics(metrics: dict) -> str:
    """The metrics as an aligned two-column table (percentages with 7 decimals: orbital
    similarities sit within 1e-6 % of 100)."""
    width = max(len(name) for name in metrics)
    rows = [
        f"{name:<{width}}  {value:12.{7 if name.endswith('_pct') else 4}f}"
        if isinstance(value, float)
        else f"{name:<{width}}  {value:>12}"
        for name, value in metrics.items()
    ]
    return "\n".join(["test-set errors", "-" * (width + 14), *rows])


#: At import, not in ``__main__``: Hydra's joblib and submitit launchers compose each job's config in
#: worker processes that import this module to unpickle ``main``, and need the schemas there too.
register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra wrapper: ``task=hamiltonian`` trains a Hamiltonian model, ``task=properties`` runs
    the vector and tensor property comparison. Returns the number a sweeper minimizes: the
    occupied orbital-energy MAE (meV), or the equivariant model's dipole RMSE (Debye)."""
    run_dir = HydraConfig.get().runtime.output_dir
    with reported_as_one_line("nhamil.train"):
        check_known_keys(cfg)
        if cfg.task == "properties":
            return train_properties(cfg.properties, run_dir, seed=cfg.seed)["dipole/equivariant/rmse"]
        if cfg.task != "hamiltonian":
            raise InputError(f"unknown task {cfg.task!r}; choose 'hamiltonian' or 'properties'")
        with process_group(cfg.device) as shard:
            return train(cfg, run_dir, shard)["occupied_energy_mae_mev"]


if __name__ == "__main__":
    main()
