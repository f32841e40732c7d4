"""Symmetry-adapted N-centre features: atom densities, their Clebsch-Gordan products, and the
atom-centred and pair families of Nigam, Willatt and Ceriotti, J. Chem. Phys. 156, 014115 (2022).

Every block keyed (o3_lambda, o3_sigma) transforms as X(R x) = irrep_wigner(lam, sigma *
(-1)**lam, R) X(x) for proper and improper rotations R of the positions (Å).
"""

from .container import EquivariantFeatures
from .density import density_expansion, neighbor_pairs, pair_density
from .families import atom_centered_features, ordered_pair_features, pair_features, symmetrized_pair_features
from .products import couple, coupling_coefficients
from .radial import cutoff_function, radial_integral_reference, radial_integrals
from .settings import DensitySettings

__all__ = [
    "DensitySettings",
    "EquivariantFeatures",
    "atom_centered_features",
    "couple",
    "coupling_coefficients",
    "cutoff_function",
    "density_expansion",
    "neighbor_pairs",
    "ordered_pair_features",
    "pair_density",
    "pair_features",
    "radial_integral_reference",
    "radial_integrals",
    "symmetrized_pair_features",
]
