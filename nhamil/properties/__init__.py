"""Vector and tensor properties: rotate-predict-rotate (RPR) against symmetry-adapted models.

Dipoles in Debye, polarizabilities in bohr^3, positions in Å. ``train_properties(cfg, run_dir)``
runs the 1,2-dichloroethane comparison from the ``properties`` config node
(:class:`nhamil.properties.config.PropertiesConfig`).
"""

from .config import PropertiesConfig, register_property_configs
from .equivariant import EquivariantPropertyModel, spherical_to_tensor, tensor_to_spherical
from .frames import principal_frame, principal_frames
from .rpr import GaussianKernelRidge, HeadRegressor, RotatePredictRotate
from .run import train_properties

__all__ = [
    "EquivariantPropertyModel",
    "GaussianKernelRidge",
    "HeadRegressor",
    "PropertiesConfig",
    "RotatePredictRotate",
    "principal_frame",
    "principal_frames",
    "register_property_configs",
    "spherical_to_tensor",
    "tensor_to_spherical",
    "train_properties",
]
