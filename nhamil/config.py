"""Typed schemas of the Hydra configuration.

They are registered in Hydra's ConfigStore as ``train_schema``; ``configs/train.yaml`` extends
it, so a misspelt setting (``head.alpah=3``) or a key leaking between config groups fails when
the config is composed, before any work. Positions are in Å throughout.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .features.settings import DensitySettings
from .heads import KernelSettings, MinibatchSettings, RidgeSettings
from .model import FeatureSettings

#: The repository's config folder (an editable install keeps it beside the package).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DataConfig:
    """frames: structure file ASE reads (extended xyz, ...); cache_dir: reference-data cache;
    n_workers: PySCF worker processes; rebuild_damaged: recompute and replace damaged or
    misplaced cache files (else they are an error naming them); allow_unconverged: use SCF
    results that did not converge, flagged (else an error naming their frames)."""

    frames: str = MISSING
    cache_dir: str = ".nhamil-cache"
    n_workers: int = 2
    rebuild_damaged: bool = False
    allow_unconverged: bool = False


@dataclass
class ReferenceConfig:
    """The level of theory: method "rhf" or "rks" (with a PySCF xc name), basis, SCF thresholds."""

    method: str = "rhf"
    xc: Optional[str] = None
    basis: str = "def2-svp"
    conv_tol: float = 1e-10
    max_cycle: int = 100


@dataclass
class SplitConfig:
    """Frame index ranges [start, stop) of the training and test sets."""

    train: list[int] = field(default_factory=lambda: [0, 40])
    test: list[int] = field(default_factory=lambda: [40, 50])


def mutable_schema(settings_class: type, name: str, *, exclude: tuple[str, ...] = (),
                   extra: tuple[tuple[str, type, Any], ...] = ()) -> type:
    """A plain dataclass ``name`` with the fields, types and defaults of the frozen dataclass
    ``settings_class``: OmegaConf makes frozen dataclasses read-only, so they cannot be schemas
    that overrides merge into, and deriving the schema keeps it from drifting from the settings.
    ``exclude`` drops fields (e.g. a nested settings object); ``extra`` appends
    (name, type, dataclasses.field) entries (e.g. that object's own schema)."""
    hints = typing.get_type_hints(settings_class)
    own = [(f.name, *_mutable_field(hints[f.name], f.default)) for f in fields(settings_class) if f.name not in exclude]
    schema = make_dataclass(name, own + list(extra))
    schema.__module__, schema.__doc__ = __name__, f"Schema of ``{settings_class.__name__}``: {settings_class.__doc__}"
    return schema


def _mutable_field(hint: Any, default: Any) -> tuple[Any, Any]:
    """(type, dataclasses.field) of a schema field: a ``tuple[X, ...]`` setting becomes a list
    with a default factory (OmegaConf has no tuples, and lists are mutable defaults)."""
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return list[item], field(default_factory=lambda: list(default))
    return hint, field(default=default)


#: Atom-density expansion (``nhamil.features.DensitySettings``); lengths in Å.
DensityConfig = mutable_schema(DensitySettings, "DensityConfig")


#: Feature families (``nhamil.model.FeatureSettings``).
FeaturesConfig = mutable_schema(FeatureSettings, "FeaturesConfig", exclude=("density",), extra=(
    ("density", DensityConfig, field(default_factory=DensityConfig)),))


def _head_schema(settings_class: type, kind: str) -> type:
    """The schema of one option of the ``head`` group: the head's settings, less ``seed`` (the
    run's ``seed`` is used), plus its ``kind``."""
    return mutable_schema(settings_class, f"{settings_class.__name__.removesuffix('Settings')}HeadConfig",
                          exclude=("seed",), extra=(("kind", str, field(default=kind)),))


RidgeHeadConfig = _head_schema(RidgeSettings, "ridge")
KernelHeadConfig = _head_schema(KernelSettings, "kernel")
MinibatchHeadConfig = _head_schema(MinibatchSettings, "minibatch")


@dataclass
class TrainConfig:
    """One training run: data, level of theory, target ("saph" or "fock_orthogonal"), the
    ``baseline`` a fock_orthogonal model learns the difference to (null or "sap"), split,
    features, head (one of the head schemas); ``task`` "hamiltonian", or "properties" for the
    vector and tensor property models configured in ``properties``; ``device`` "cpu" or
    "cuda"; ``seed`` fixes folds and anything random."""

    data: DataConfig = field(default_factory=DataConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    target: str = "saph"
    baseline: Optional[str] = None
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    head: Any = MISSING
    device: str = "cpu"
    seed: int = 0
    task: str = "hamiltonian"
    properties: Any = None


def register_configs() -> None:
    """Put the schemas into Hydra's ConfigStore (idempotent). Each option of the ``head`` group
    extends its own schema, so keys of one head kind cannot leak into another. The property
    schemas build on these ones (they reuse DensityConfig), hence their import here."""
    from .properties.config import register_property_configs

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for name, node in [("ridge", RidgeHeadConfig), ("kernel", KernelHeadConfig), ("minibatch", MinibatchHeadConfig)]:
        store.store(group="head", name=f"{name}_schema", node=node)
    register_property_configs()


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The training config that ``python -m nhamil.train OVERRIDES`` would run, for notebooks,
    scripts and tests (``configs/`` of the repository checkout)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))
