"""+/- pairs: different (not congruent) structures with equal nu = 3 invariants of their centre,
told apart by the triplet features."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from nhamil.features import DensitySettings
from nhamil.features.completeness import matched_distance
from nhamil.features.plus_minus import GeometryRanges, RingsGeometry, centre_invariants, random_geometries

SETTINGS = DensitySettings(max_radial=3, max_angular=3)
SPECIES = (1, 6, 8)
#: A "clear margin" of relative distance, as in test_completeness.py (seen here: 12-23 %).
CLEAR = 0.03
#: Three-atom rings (the paper's CH6O) and larger ones.
PAIRS = random_geometries(3, seed=1) + random_geometries(1, seed=2, ranges=GeometryRanges(n_ring=4, min_gap=0.5))

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def invariants():
    """:class:`CentreInvariants` of plus, minus, plus, minus, ... of ``PAIRS``."""
    return centre_invariants([atoms for geometry in PAIRS for atoms in geometry.pair()], SPECIES, SETTINGS)


def relative_difference(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """(n,) ||a - b|| / ||a|| row by row."""
    return (first - second).norm(dim=-1) / first.norm(dim=-1)


def triplet_rows(invariants, structure: int):
    """(rows, element labels) of one structure's pair-symmetrized triplets."""
    rows = invariants.pair_structure == structure
    return invariants.pairs[rows], invariants.pair_elements[rows] @ torch.tensor([1000, 1])


def test_nu3_of_the_centre_agrees(invariants):
    assert relative_difference(invariants.nu3[0::2], invariants.nu3[1::2]).max() < 1e-10


def test_triplets_tell_the_members_apart(invariants):
    for pair in range(len(PAIRS)):
        distance = matched_distance(triplet_rows(invariants, 2 * pair), triplet_rows(invariants, 2 * pair + 1))
        assert distance > CLEAR, (pair, distance)


def test_linear_sum_of_triplets_does_not(invariants):
    """Summed over neighbour pairs of given elements, triplets are nu = 3 features again."""
    sums = {}
    for structure in range(2 * len(PAIRS)):
        rows, labels = triplet_rows(invariants, structure)
        sums[structure] = torch.stack([rows[labels == label].sum(dim=0) for label in sorted(set(labels.tolist()))])
    for pair in range(len(PAIRS)):
        assert relative_difference(sums[2 * pair], sums[2 * pair + 1]).max() < 1e-10


def congruence_gap(first, second) -> float:
    """Smallest max |D1 - P D2 P^T| (Å) over permutations P of atoms of equal elements, D the
    interatomic distance matrices: 0 exactly when the structures are congruent (rotations,
    inversion and mirror images included)."""
    numbers = first.numbers
    assert sorted(numbers) == sorted(second.numbers)
    groups = [np.flatnonzero(second.numbers == z) for z in sorted(set(numbers))]
    targets = [np.flatnonzero(numbers == z) for z in sorted(set(numbers))]
    d1, d2 = first.get_all_distances(), second.get_all_distances()
    best = np.inf
    for choice in itertools.product(*(itertools.permutations(group) for group in groups)):
        order = np.empty(len(numbers), dtype=int)
        for target, chosen in zip(targets, choice, strict=True):
            order[target] = chosen
        best = min(best, np.abs(d1 - d2[np.ix_(order, order)]).max())
    return best


def test_members_are_not_congruent():
    for geometry in PAIRS[:3]:
        assert congruence_gap(*geometry.pair()) > 0.05


def test_congruence_gap_finds_mirror_images_of_renumbered_atoms():
    plus, _ = PAIRS[0].pair()
    mirrored = plus[[0, 5, 3, 1, 6, 2, 4, 7]]
    mirrored.positions = mirrored.positions @ np.diag([1.0, -1.0, 1.0])
    assert congruence_gap(plus, mirrored) < 1e-12


@pytest.mark.parametrize(
    "azimuths, twist",
    [
        ((0.0, 2.0, 4.0), 0.7),  # isosceles: its own mirror image
        ((0.0, 2 * np.pi / 3, 4 * np.pi / 3), 0.7),  # regular
        ((0.0, 1.0, 3.0), np.pi),
    ],
)  # twist pi: members coincide
def test_congruent_constructions_are_rejected(azimuths, twist):
    with pytest.raises(ValueError):
        RingsGeometry(azimuths=azimuths, radius=1.0, height=0.5, twist=twist, cap=1.3)
