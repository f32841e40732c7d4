"""Compare the environments of one atom in two structures through every feature family.

The completeness study of Nigam, Willatt and Ceriotti (J. Chem. Phys. 156, 014115) shows
structures whose atom-centred features of a given order coincide while N-centre features tell
them apart. Atom-centred families give one vector per centre; pair and triplet families give a
set of vectors (one per neighbour, or neighbour pair), which are compared after matching the sets
optimally (Hungarian assignment, within the same neighbour elements), so that the distance does
not depend on how the atoms are numbered.
"""

from __future__ import annotations

from collections.abc import Sequence

import ase
import torch
from scipy.optimize import linear_sum_assignment

from ..structures import Structures
from .container import EquivariantFeatures
from .families import atom_centered_features, both_centre_pair_features, pair_features
from .manybody import message_passing_features, triplet_features
from .neighbors import neighbor_pairs, neighbor_triplets
from .settings import DensitySettings

#: Invariant features of one centre: (n_samples, n_features) rows and (n_samples,) element labels.
Invariants = tuple[torch.Tensor, torch.Tensor]


def family_invariants(
    atoms: ase.Atoms, centre: int, species: Sequence[int], settings: DensitySettings
) -> dict[str, Invariants]:
    """Invariants (lam = 0, both sigmas, concatenated) of atom ``centre`` by family: "nu=1",
    "nu=2", "nu=3" (atom-centred), "pair nu<=1", "pair nu<=2", "both centres" (pairs (centre, j)
    for every neighbour j, labelled by Z_j), "triplets" ((centre, j, k), labelled by (Z_j, Z_k))
    and "message passing" (rho_i^[1<-1])."""
    structures = Structures.from_atoms([atoms])
    first, second = neighbor_pairs(structures, settings.cutoff)
    neighbors = second[(first == centre) & (second != centre)]
    pairs = torch.stack([torch.zeros_like(neighbors), torch.full_like(neighbors, centre), neighbors], dim=1)
    triplets = neighbor_triplets(structures, settings.cutoff)
    triplets = triplets[triplets[:, 1] == centre]
    numbers = structures.numbers
    atom = torch.tensor([centre])
    result = {
        f"nu={nu}": (
            scalar_invariants(
                atom_centered_features(structures, species, settings, max_lambda=0, correlation_order=nu)
            )[atom],
            numbers[atom],
        )
        for nu in (1, 2, 3)
    }
    message = message_passing_features(structures, species, settings, max_lambda=0)
    result["message passing"] = (scalar_invariants(message)[atom], numbers[atom])
    for name, order in (("pair nu<=1", 1), ("pair nu<=2", 2)):
        features = pair_features(structures, species, settings, pairs, max_lambda=0, correlation_order=order)
        result[name] = (scalar_invariants(features), numbers[neighbors])
    both = both_centre_pair_features(structures, species, settings, pairs, max_lambda=0)
    result["both centres"] = (scalar_invariants(both), numbers[neighbors])
    result["triplets"] = (
        scalar_invariants(triplet_features(structures, species, settings, triplets)),
        numbers[triplets[:, 2]] * 1000 + numbers[triplets[:, 3]],
    )
    return result


def matched_distance(first: Invariants, second: Invariants) -> float:
    """Relative distance ||A - P B|| / sqrt((||A||^2 + ||B||^2) / 2) between two sets of feature
    rows, P the assignment of rows with equal labels that minimizes it. 0 for identical sets,
    sqrt(2) for orthogonal ones; ``ValueError`` if the label counts differ."""
    (a, labels_a), (b, labels_b) = first, second
    if sorted(labels_a.tolist()) != sorted(labels_b.tolist()):
        raise ValueError("the two sets have different neighbour elements")
    squared = 0.0
    for label in labels_a.unique():
        # direct differences: the matrix-product shortcut loses half the digits of small distances
        cost = torch.cdist(
            a[labels_a == label], b[labels_b == label], compute_mode="donot_use_mm_for_euclid_dist"
        ).square()
        rows, columns = linear_sum_assignment(cost.detach().cpu().numpy())
        squared += float(cost[rows, columns].sum())
    return (squared / (0.5 * float(a.square().sum() + b.square().sum()))) ** 0.5


def scalar_invariants(features: EquivariantFeatures) -> torch.Tensor:
    """(n, f) the lam = 0 blocks of both sigmas side by side."""
    return torch.cat([features.blocks[key][:, 0] for key in ((0, 1), (0, -1)) if key in features.blocks], dim=1)
