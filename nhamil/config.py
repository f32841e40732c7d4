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
    own = [(f.name, hints[f.name], field(default=f.default)) for f in fields(settings_class) if f.name not in exclude]
    schema = make_dataclass(name, own + list(extra))
    schema.__module__, schema.__doc__ = __name__, f"Schema of ``{settings_class.__name__}``: {settings_class.__doc__}"
    return schema


#: Atom-density expansion (``nhamil.features.DensitySettings``); lengths in Å.
DensityConfig = mutable_schema(DensitySettings, "DensityConfig")


@dataclass
class FeaturesConfig:
    """Feature families (see ``nhamil.model.FeatureSettings``): on-site |rho_i^1..nu> with nu =
    onsite_correlation_order (1-3) and optionally |rho_i^[1<-1]>; pairs |rho_ij^0..nu> with nu =
    pair_correlation_order (1-2) and optionally |rho_ij^(1,1)>; contraction_channels: PCA channels
    kept per (lambda, sigma) block of the order >= 2 correlations (null: all)."""

    density: DensityConfig = field(default_factory=DensityConfig)
    onsite_correlation_order: int = 2
    message_passing: bool = False
    pair_correlation_order: int = 1
    both_centres: bool = False
    contraction_channels: Optional[int] = None


def _alpha_grid() -> list[float]:
    return [10.0 ** k for k in range(-12, 1)]


@dataclass
class RidgeHeadConfig:
    """Closed-form ridge heads: relative regularization grid and cross-validation folds."""

    kind: str = "ridge"
    alphas: list[float] = field(default_factory=_alpha_grid)
    n_folds: int = 5


@dataclass
class KernelHeadConfig:
    """lambda-SOAP kernel ridge: invariant-kernel power zeta; n_active active samples per block
    chosen by farthest-point sampling (null: the full kernel)."""

    kind: str = "kernel"
    zeta: int = 2
    n_active: Optional[int] = None
    alphas: list[float] = field(default_factory=_alpha_grid)
    n_folds: int = 5


@dataclass
class MinibatchHeadConfig:
    """Trainable linear heads fitted with Adam over minibatches of samples."""

    kind: str = "minibatch"
    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 1.0e-2
    weight_decay: float = 1.0e-8


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
