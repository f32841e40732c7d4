"""Typed schemas of the Hydra configuration.

They are registered in Hydra's ConfigStore as ``train_schema``; ``configs/train.yaml`` extends
it, so a misspelt setting (``head.alpah=3``) or a key leaking between config groups fails when
the config is composed, before any work. Positions are in Å throughout.
"""

from __future__ import annotations

import collections.abc
import typing
from dataclasses import MISSING as MISSING_FIELD
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .features.settings import DensitySettings
from .heads import GatedSettings, KernelSettings, MinibatchSettings, RidgeSettings
from .model import FeatureSettings
from .reference import ProjectionSettings
from .training import FinetuneSettings

#: The repository's config folder (an editable install keeps it beside the package).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DataConfig:
    """frames: structure file ASE reads (extended xyz, ...); cache_dir: reference-data cache;
    n_workers: PySCF worker processes."""

    frames: str = MISSING
    cache_dir: str = ".nhamil-cache"
    n_workers: int = 2


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
    own = [(f.name, *_mutable_field(hints[f.name], f.default if f.default_factory is MISSING_FIELD else
                                    f.default_factory()))
           for f in fields(settings_class) if f.name not in exclude]
    schema = make_dataclass(name, own + list(extra))
    schema.__module__, schema.__doc__ = __name__, f"Schema of ``{settings_class.__name__}``: {settings_class.__doc__}"
    return schema


def _mutable_field(hint: Any, default: Any) -> tuple[Any, Any]:
    """(type, dataclasses.field) of a schema field: a tuple setting becomes a list and a mapping
    a dict with string keys (OmegaConf has no tuples and no Mapping type, and Hydra's dotted
    overrides such as ``projection.core_orbitals.8=1`` give keys as strings), with a default
    factory (they are mutable defaults)."""
    if typing.get_origin(hint) in (tuple, collections.abc.Mapping):
        return _plain_type(hint), field(default_factory=lambda: _plain_value(default))
    return hint, field(default=default)


def _plain_type(hint: Any) -> Any:
    """``tuple[X, ...]`` and ``tuple[X, X]`` -> ``list[X]``, ``Mapping[K, V]`` -> ``dict[str, V]``, nested."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return list[_plain_type(arguments[0])]
    if origin is collections.abc.Mapping:
        return dict[str, _plain_type(arguments[1])]
    return hint


def _plain_value(value: Any) -> Any:
    """Tuples as lists, mappings as dicts with string keys."""
    if isinstance(value, dict):
        return {str(key): _plain_value(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain_value(item) for item in value]
    return value


#: Atom-density expansion (``nhamil.features.DensitySettings``); lengths in Å.
DensityConfig = mutable_schema(DensitySettings, "DensityConfig")


#: How the SAPH is projected (``nhamil.reference.ProjectionSettings``). Its tables are keyed by Z as
#: strings (quote them in YAML: ``core_orbitals: {"8": 1}``), as Hydra's dotted overrides give them.
ProjectionConfig = mutable_schema(ProjectionSettings, "ProjectionConfig")


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
GatedHeadConfig = _head_schema(GatedSettings, "gated")

#: Whole-model training after the fit (``nhamil.training.FinetuneSettings``; epochs 0: none).
FinetuneConfig = mutable_schema(FinetuneSettings, "FinetuneConfig", exclude=("seed",))


@dataclass
class TrainConfig:
    """One training run: data, level of theory, target (one of ``nhamil.targets.TARGETS``:
    "saph", "fock_orthogonal", or "fock", the AO Fock matrix), the SAPH's ``projection``, the
    ``baseline`` a full Fock model learns the difference to (null or "sap"), split,
    features, head (one of the head schemas), ``finetune`` (training of all heads together
    after the fit); ``task`` "hamiltonian", or "properties" for the
    vector and tensor property models configured in ``properties``; ``device`` "cpu" or
    "cuda"; ``seed`` fixes folds and anything random."""

    data: DataConfig = field(default_factory=DataConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    target: str = "saph"
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    baseline: Optional[str] = None
    split: SplitConfig = field(default_factory=SplitConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    head: Any = MISSING
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
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
    for name, node in [("ridge", RidgeHeadConfig), ("kernel", KernelHeadConfig), ("minibatch", MinibatchHeadConfig),
                       ("gated", GatedHeadConfig)]:
        store.store(group="head", name=f"{name}_schema", node=node)
    register_property_configs()


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The training config that ``python -m nhamil.train OVERRIDES`` would run, for notebooks,
    scripts and tests (``configs/`` of the repository checkout)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))
