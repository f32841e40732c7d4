"""Typed schemas of the Hydra configuration.

They are registered in Hydra's ConfigStore as ``train_schema``; ``configs/train.yaml`` extends
it, so a misspelt setting (``head.alpah=3``) or a key leaking between config groups fails when
the config is composed, before any work. Positions are in Å throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from .errors import InputError
from .features.settings import FeatureSettings
from .heads import HEADS
from .properties.config import register_property_configs
from .reference import ProjectionSettings
from .reference.hartree import HartreeSettings
from .schemas import DensityConfig, ReferenceConfig, mutable_schema
from .sources import MoleculeSource, register_resolvers
from .training import FinetuneSettings


def config_dir() -> Path:
    """The folder of ``train.yaml`` and its config groups: the top-level ``configs/`` of a source
    checkout (running from the repository, or an editable install), else the copy an installed
    wheel holds as the package ``nhamil.configs``. ``InputError`` if neither is there."""
    package = Path(__file__).resolve().parent
    checkout, installed = package.parent / "configs", package / "configs"
    if (package.parent / "pyproject.toml").is_file() and (checkout / "train.yaml").is_file():
        return checkout
    if (installed / "train.yaml").is_file():
        return installed
    raise InputError(f"no nhamil config folder: neither {checkout} nor {installed} holds train.yaml; reinstall nhamil")


#: The config folder (see :func:`config_dir`).
CONFIG_DIR = config_dir()


#: Molecules made 3D from SMILES (``nhamil.sources.MoleculeSource``): file, filter, seed, cap.
MoleculesConfig = mutable_schema(MoleculeSource, "MoleculesConfig")


@dataclass
class DataConfig:
    """frames: structure file ASE reads (extended xyz, an ASE database, ...; from SMILES:
    ``${nhamil.molecules:${data.molecules},${data.cache_dir}}``); molecules: the SMILES source of
    ``frames``, if any; extrapolation_frames: a second test set, every structure of that file
    (from SMILES: the source ``extrapolation``), evaluated apart; cache_dir: reference-data cache;
    n_workers: PySCF worker processes; rebuild_damaged: recompute and replace damaged or
    misplaced cache files (else they are an error naming them); allow_unconverged: use SCF
    results that did not converge, flagged (else an error naming their frames)."""

    frames: str = MISSING
    molecules: Optional[MoleculesConfig] = None
    extrapolation: Optional[MoleculesConfig] = None
    extrapolation_frames: Optional[str] = None
    cache_dir: str = ".nhamil-cache"
    n_workers: int = 2
    rebuild_damaged: bool = False
    allow_unconverged: bool = False


@dataclass
class SplitConfig:
    """Frame index ranges [start, stop) of the training and test sets: two absolute indices
    (0 <= start < stop <= number of frames) each, checked by ``nhamil.train``."""

    train: list[int] = field(default_factory=lambda: [0, 40])
    test: list[int] = field(default_factory=lambda: [40, 50])


#: How the SAPH is projected (``nhamil.reference.ProjectionSettings``). Its tables are keyed by Z as
#: strings (quote them in YAML: ``core_orbitals: {"8": 1}``), as Hydra's dotted overrides give them.
ProjectionConfig = mutable_schema(ProjectionSettings, "ProjectionConfig")


#: Feature families (``nhamil.features.FeatureSettings``).
FeaturesConfig = mutable_schema(
    FeatureSettings,
    "FeaturesConfig",
    exclude=("density",),
    extra=(("density", DensityConfig, field(default_factory=DensityConfig)),),
)


def _head_schema(settings_class: type, kind: str) -> type:
    """The schema of one option of the ``head`` group: the head's settings, less ``seed`` (the
    run's ``seed`` is used), plus its ``kind``."""
    return mutable_schema(
        settings_class,
        f"{settings_class.__name__.removesuffix('Settings')}HeadConfig",
        exclude=("seed",),
        extra=(("kind", str, field(default=kind)),),
    )


#: Whole-model training after the fit (``nhamil.training.FinetuneSettings``; epochs 0: none).
FinetuneConfig = mutable_schema(FinetuneSettings, "FinetuneConfig", exclude=("seed",))

#: The self-consistent Hartree term of a full Fock model (``nhamil.reference.hartree``), on with
#: ``hartree.enabled=true``.
HartreeConfig = mutable_schema(HartreeSettings, "HartreeConfig", extra=(("enabled", bool, field(default=False)),))


@dataclass
class FitConfig:
    """chunk_frames: stream the ridge or sparse kernel fit over chunks of this many frames (None: hold each group's
    features, the in-memory fit; a run on several processes streams 16 at a time by default);
    contraction_frames: fit the channel contractions on the first this many training frames
    (None: all); sums_memory_gb: hold at most this many GB of ridge sums, in several passes over
    the frames (None: one pass). See ``nhamil.heads.streaming`` and ``nhamil.distributed``."""

    chunk_frames: Optional[int] = None
    contraction_frames: Optional[int] = None
    sums_memory_gb: Optional[float] = None


@dataclass
class TrainConfig:
    """One training run: data, level of theory, target (one of ``nhamil.targets.TARGETS``:
    "saph", "fock_orthogonal", or "fock", the AO Fock matrix), the SAPH's ``projection``, the
    ``baseline`` a full Fock model learns the difference to (null, "sap" or "minao"), its
    self-consistent ``hartree`` term (``hartree.enabled``; with a baseline, no fine-tuning),
    ``pair_cutoff`` (Å, null: every atom pair), split, features, head (one of the head
    schemas), ``onsite_head`` (null: ``head``; else an option of the head group for the on-site
    blocks, chosen with ``+head@onsite_head=sparse_kernel``), ``finetune`` (training of all heads
    together after the fit); ``task``
    "hamiltonian", or "properties" for the vector and tensor property models configured in
    ``properties``; ``device`` "cpu" or "cuda"; ``seed`` fixes folds and anything random."""

    data: DataConfig = field(default_factory=DataConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    target: str = "saph"
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    baseline: Optional[str] = None
    hartree: HartreeConfig = field(default_factory=HartreeConfig)
    pair_cutoff: Optional[float] = None
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    head: Any = MISSING
    onsite_head: Any = None
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    device: str = "cpu"
    seed: int = 0
    task: str = "hamiltonian"
    properties: Any = None


def check_known_keys(cfg: DictConfig, where: str = "") -> None:
    """Raise :class:`InputError` naming a setting that the config's schema does not have. Hydra
    lets ``+key=value`` add keys to any node, typed ones included, so ``+head.alpah=1`` or
    ``+split.valid=[0,5]`` would otherwise be ignored or fail only after the reference
    calculations; nodes without a dataclass schema (``properties: Any``) are not checked."""
    schema = OmegaConf.get_type(cfg)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in cfg:
        name = f"{where}{key}"
        if known is not None and key not in known:
            raise InputError(
                f"unknown setting {name!r}: {schema.__name__} has {', '.join(sorted(known))}; "
                "check its spelling (a '+' override adds any key)"
            )
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            check_known_keys(node, f"{name}.")


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent): ``train_schema``, and one
    ``head/<kind>_schema`` for every kind of :data:`nhamil.heads.HEADS` (each option of the ``head``
    group extends its own, so keys of one head kind cannot leak into another), and the property
    schemas. Also adds the data configs' resolvers (:func:`nhamil.sources.register_resolvers`)."""
    register_resolvers()
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for kind in HEADS.values():
        store.store(group="head", name=f"{kind.name}_schema", node=_head_schema(kind.settings, kind.name))
    register_property_configs()


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The training config that ``python -m nhamil.train OVERRIDES`` would run, for notebooks,
    scripts and tests (the config folder of :func:`config_dir`)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))
