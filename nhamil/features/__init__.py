"""Symmetry-adapted N-centre features: atom densities, their Clebsch-Gordan products, and the
atom-centred (nu <= 3, optionally PCA-contracted), pair (nu <= 2, both-centre), triplet and
message-passing families of Nigam, Willatt and Ceriotti, J. Chem. Phys. 156, 014115 (2022).

Every block keyed (o3_lambda, o3_sigma) transforms as X(R x) = irrep_wigner(lam, sigma *
(-1)**lam, R) X(x) for proper and improper rotations R of the positions (Å).
"""

from .container import EquivariantFeatures
from .contraction import ChannelContraction
from .correlations import MAX_CORRELATION_ORDER, density_correlations, fit_contractions
from .density import density_expansion, pair_density
from .families import (
    atom_centered_features,
    both_centre_pair_features,
    both_directions,
    concatenate_directions,
    ordered_pair_features,
    pair_features,
    select_rows,
    symmetrize,
    symmetrized_pair_features,
)
from .manybody import message_passing_features, triplet_features
from .ncenter import NCenterFeaturizer, head_inputs
from .neighbors import neighbor_pairs, neighbor_triplets
from .products import couple
from .radial import cutoff_function, radial_integral_reference, radial_integrals
from .settings import DensitySettings, FeatureSettings

__all__ = [
    "MAX_CORRELATION_ORDER",
    "ChannelContraction",
    "DensitySettings",
    "EquivariantFeatures",
    "FeatureSettings",
    "NCenterFeaturizer",
    "atom_centered_features",
    "both_centre_pair_features",
    "both_directions",
    "concatenate_directions",
    "couple",
    "cutoff_function",
    "density_correlations",
    "density_expansion",
    "fit_contractions",
    "head_inputs",
    "message_passing_features",
    "neighbor_pairs",
    "neighbor_triplets",
    "ordered_pair_features",
    "pair_density",
    "pair_features",
    "radial_integral_reference",
    "radial_integrals",
    "select_rows",
    "symmetrize",
    "symmetrized_pair_features",
    "triplet_features",
]
