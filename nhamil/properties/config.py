"""Hydra schemas of the property experiments (``+experiment=dipole_dce``): the ``properties``
node of the training config. Positions in Å, dipoles in Debye, polarizabilities in bohr^3."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from nhamil.properties.data import TrajectorySettings
from nhamil.schemas import DensityConfig, ReferenceConfig, mutable_schema

#: The ab initio MD (``nhamil.properties.data.TrajectorySettings``): n_frames frames, and the
#: level of theory as a ``nhamil.schemas.ReferenceConfig`` (default RHF/STO-3G) in place of ``scf``.
TrajectoryConfig = mutable_schema(
    TrajectorySettings,
    "TrajectoryConfig",
    exclude=("scf",),
    extra=(
        ("n_frames", int, field(default=2200)),
        ("reference", ReferenceConfig, field(default_factory=lambda: ReferenceConfig(basis="sto-3g", conv_tol=1e-9))),
    ),
)


@dataclass
class EquivariantConfig:
    """Atom-centred features |rho_i^nu> (density settings in Å) and the head: "ridge" or
    "kernel" (lambda-SOAP kernel of power zeta on molecular feature sums)."""

    density: DensityConfig = field(default_factory=lambda: DensityConfig(cutoff=5.0, max_radial=4, max_angular=3))
    correlation_order: int = 2
    head: str = "ridge"
    zeta: int = 2


@dataclass
class PropertiesConfig:
    """Comparison of RPR, equivariant and Cartesian models on one trajectory: test = the last
    n_test frames, train = n_train frames evenly spaced before them; learning_curve: training
    sizes; n_augment: rotated copies per frame for the augmented Cartesian model; n_rotations:
    random rotations of the test set for the equivariance error."""

    cache_dir: str = ".nhamil-cache/properties"
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    equivariant: EquivariantConfig = field(default_factory=EquivariantConfig)
    n_train: int = 1000
    n_test: int = 1200
    learning_curve: list[int] = field(default_factory=lambda: [100, 250, 500, 1000])
    n_augment: int = 4
    n_rotations: int = 4


def register_property_configs() -> None:
    """Put the schema into Hydra's ConfigStore as ``properties/properties_schema`` (idempotent)."""
    ConfigStore.instance().store(group="properties", name="properties_schema", node=PropertiesConfig)
