"""+/- pairs: two different structures whose centres have equal atom-centred features up to nu = 3.

The construction of the completeness study (Pozdnyakov et al., Phys. Rev. Lett. 125, 166001;
Nigam, Willatt and Ceriotti, J. Chem. Phys. 156, 014115): a centre at the origin; an upper ring
of n atoms at height +h, radius r, azimuths a_1 .. a_n; a lower ring at -h, the same polygon
turned by the twist phi about z (azimuths a_i + phi); and a cap atom on the z axis, at +c in the
"+" member and at -c in the "-" member.

Why nu = 3 cannot tell them apart. The invariants of order nu = 3 (both parities) are sums over
ordered neighbour triples (j, k, l), repetitions included, of a function of the triple's class
under proper rotations SO(3) (the atom densities and the cutoff are isotropic). Triples without
the cap are the same atoms in both members. Triples with the cap: turn the "-" member by the
proper two-fold rotation about the x axis, C2: (x, y, z) -> (x, -y, -z); its cap goes to +c, a
ring atom at height z and azimuth a goes to height -z and azimuth -a. The class of (cap, j, k)
with the cap fixed on the axis is (z_j, z_k, a_k - a_j) up to rotations about z, so the "-"
member contributes the multiset {(-z_j, -z_k, a_j - a_k)} and the "+" member {(z_j, z_k,
a_k - a_j)}. Both rings at one height: upper-upper pairs map onto lower-lower pairs, equal
because both rings are the same polygon (azimuth differences of all ordered pairs, a symmetric
multiset). One atom in each ring: (upper j, lower k) maps onto the ordered pair (lower k, upper
j) of the "+" member. Triples with the cap twice depend on one ring atom's |z|. So every
multiset coincides, for any n, radius, height, twist and cap distance: nu = 3 is degenerate
exactly (it is checked to 1e-10 in ``tests/test_plus_minus.py``), and so is every pairwise
distance and every triangle of the whole molecule.

Why the members still differ. Reflecting the "-" member through the xy plane and turning it by
-phi about z gives the "+" member with the twist -phi: the members are rings(phi) and
rings(-phi) seen from the cap. They are congruent only if the ring polygon is its own mirror
image in the plane (a regular polygon, two atoms, an isosceles triangle...): then they are
enantiomers, with equal energies. So the ring must be chiral in the plane: the cyclic sequence
of azimuth gaps must not equal its reverse up to a cyclic shift. The twist must avoid 0 and pi,
where the members coincide. Their energies then differ by four-body (and higher) terms only,
which the N-centre triplet features |rho_{i i1 i2}> (``triplet_features``) see. The sum of
those triplet features over all neighbour pairs does not: it is nu = 3 again, minus terms of
lower order; a nonlinear function of the triplets is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np
import torch

from ..structures import Structures
from .completeness import scalar_invariants
from .families import atom_centered_features
from .manybody import triplet_features
from .neighbors import neighbor_triplets
from .settings import DensitySettings

#: Smallest difference between two azimuth gaps (radians) for a ring to count as chiral.
CHIRAL_TOLERANCE = 1e-6


@dataclass(frozen=True, kw_only=True)
class RingsGeometry:
    """One +/- pair. azimuths: (n,) angles of the upper ring's atoms, radians; radius, height,
    cap: Å (rings at +height and -height, the cap at +cap or -cap on the z axis); twist: turn of
    the lower ring against the upper one, radians; centre_element, ring_element, cap_element:
    atomic numbers. ``ValueError`` for an achiral ring, a twist at 0 or pi, or non-positive
    lengths: such pairs are congruent."""

    azimuths: tuple[float, ...]
    radius: float
    height: float
    twist: float
    cap: float
    centre_element: int = 6
    ring_element: int = 1
    cap_element: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "azimuths", tuple(float(a) for a in self.azimuths))
        if min(self.radius, self.height, self.cap) <= 0:
            raise ValueError(f"radius, height and cap must be positive, got {self}")
        if abs(np.sin(self.twist)) < CHIRAL_TOLERANCE:
            raise ValueError(f"twist {self.twist} is a multiple of pi: the two members coincide")
        if not ring_is_chiral(self.azimuths):
            raise ValueError(f"the ring {self.azimuths} is its own mirror image: the members are enantiomers")

    def structure(self, sign: int) -> ase.Atoms:
        """The "+" (sign = +1, cap above) or "-" (sign = -1, cap below) member, Å; atoms:
        centre, upper ring, lower ring, cap."""
        if sign not in (1, -1):
            raise ValueError(f"sign must be +1 or -1, got {sign}")
        upper = np.asarray(self.azimuths)
        positions = np.concatenate(
            [
                np.zeros((1, 3)),
                self._ring(upper, self.height),
                self._ring(upper + self.twist, -self.height),
                [[0.0, 0.0, sign * self.cap]],
            ]
        )
        numbers = [self.centre_element] + [self.ring_element] * (2 * len(upper)) + [self.cap_element]
        return ase.Atoms(numbers=numbers, positions=positions)

    def pair(self) -> tuple[ase.Atoms, ase.Atoms]:
        """(plus, minus) members."""
        return self.structure(1), self.structure(-1)

    def _ring(self, azimuths: np.ndarray, z: float) -> np.ndarray:
        return np.stack(
            [self.radius * np.cos(azimuths), self.radius * np.sin(azimuths), np.full_like(azimuths, z)], axis=1
        )


def ring_is_chiral(azimuths) -> bool:
    """Whether the polygon of points at ``azimuths`` (radians) on a circle differs from its mirror
    image up to rotations: its cyclic sequence of gaps is no cyclic shift of the reversed one."""
    gaps = azimuth_gaps(azimuths)
    mirrored = gaps[::-1]
    return all(np.abs(np.roll(mirrored, shift) - gaps).max() > CHIRAL_TOLERANCE for shift in range(len(gaps)))


def azimuth_gaps(azimuths) -> np.ndarray:
    """(n,) angles between cyclically consecutive points, radians, summing to 2 pi."""
    angles = np.sort(np.mod(np.asarray(azimuths, dtype=np.float64), 2 * np.pi))
    return np.diff(np.append(angles, angles[0] + 2 * np.pi))


@dataclass(frozen=True, kw_only=True)
class GeometryRanges:
    """Uniform ranges (low, high) for random pairs: radius, height, cap in Å, twist in radians.
    n_ring: atoms per ring; min_gap: smallest azimuth gap, radians; min_chirality: smallest
    difference between two gaps, radians (keeps the ring clearly chiral)."""

    radius: tuple[float, float] = (1.0, 1.3)
    height: tuple[float, float] = (0.4, 0.7)
    twist: tuple[float, float] = (0.15 * np.pi, 0.85 * np.pi)
    cap: tuple[float, float] = (1.2, 1.6)
    n_ring: int = 3
    min_gap: float = 0.8
    min_chirality: float = 0.2

    def __post_init__(self) -> None:
        if self.n_ring < 3 or self.n_ring * self.min_gap >= 2 * np.pi:
            raise ValueError(f"need n_ring >= 3 and n_ring * min_gap < 2 pi, got {self}")


def random_geometries(n_pairs: int, seed: int, ranges: GeometryRanges = GeometryRanges()) -> list[RingsGeometry]:
    """``n_pairs`` random :class:`RingsGeometry`, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [_random_geometry(rng, ranges) for _ in range(n_pairs)]


def _random_geometry(rng: np.random.Generator, ranges: GeometryRanges) -> RingsGeometry:
    gaps = _random_gaps(rng, ranges)
    azimuths = rng.uniform(0, 2 * np.pi) + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    radius, height, twist, cap = (rng.uniform(*getattr(ranges, name)) for name in ("radius", "height", "twist", "cap"))
    return RingsGeometry(azimuths=tuple(azimuths), radius=radius, height=height, twist=twist, cap=cap)


def _random_gaps(rng: np.random.Generator, ranges: GeometryRanges) -> np.ndarray:
    """(n_ring,) azimuth gaps summing to 2 pi, each >= min_gap, pairwise >= min_chirality apart
    (rejection sampling)."""
    while True:
        gaps = ranges.min_gap + rng.dirichlet(np.full(ranges.n_ring, 2.0)) * (
            2 * np.pi - ranges.n_ring * ranges.min_gap
        )
        differences = np.abs(gaps[:, None] - gaps[None, :])[np.triu_indices(ranges.n_ring, 1)]
        if differences.min() >= ranges.min_chirality:
            return gaps


@dataclass(frozen=True)
class CentreInvariants:
    """Invariants (lam = 0, both parities, concatenated) of atom 0 of each of n structures.

    nu3: (n, f) atom-centred nu = 3 features; pairs: (m, g) pair-symmetrized triplet features
    t(0, j, k) + t(0, k, j), one row per unordered pair j < k of neighbours of atom 0 (so the rows
    do not depend on how the atoms are numbered); pair_structure: (m,) the structure of each row;
    pair_elements: (m, 2) atomic numbers (Z_j, Z_k), sorted. Units of the density expansion
    (Å^(-3/2) per density factor)."""

    nu3: torch.Tensor
    pairs: torch.Tensor
    pair_structure: torch.Tensor
    pair_elements: torch.Tensor


def centre_invariants(frames: list[ase.Atoms], species, settings: DensitySettings) -> CentreInvariants:
    """The :class:`CentreInvariants` of atom 0 of every frame, float64."""
    structures = Structures.from_atoms(frames)
    centres = structures.ptr[:-1]
    nu3 = atom_centered_features(structures, species, settings, max_lambda=0, correlation_order=3)
    triplets = neighbor_triplets(structures, settings.cutoff)
    triplets = triplets[(triplets[:, 1] == 0) & (triplets[:, 2] < triplets[:, 3])]
    swapped = triplets[:, [0, 1, 3, 2]]
    pairs = sum(
        scalar_invariants(triplet_features(structures, species, settings, rows)) for rows in (triplets, swapped)
    )
    elements = structures.numbers[centres[triplets[:, 0]][:, None] + triplets[:, 2:]]
    return CentreInvariants(scalar_invariants(nu3)[centres], pairs, triplets[:, 0], elements.sort(dim=1).values)
