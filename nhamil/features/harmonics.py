"""Real spherical harmonics of neighbour vectors: a monomial table for short lists, e3nn for long ones.

Each Y_lm restricted to the unit sphere is a homogeneous polynomial of degree l in the
components (x, y, z) of the unit vector. The table holds those polynomials' coefficients on the
monomials x^a y^b z^c (a + b + c = l, every l <= max_l), identified once by least squares on
points of the sphere from :func:`nhamil.orbitals.real_spherical_harmonics_up_to` (the project's
convention); evaluation is then a handful of tensor operations whatever max_l, instead of one per
term of the recurrences, which matters when a call sees only tens of vectors. From
:data:`E3NN_FROM` vectors on, e3nn's ``SphericalHarmonics`` module (one cached instance per
max_l) is faster (``python benchmarks/harmonics.py``: 0.07x the table's time at 36 vectors,
about 1x at 3,000, 5-9x faster at 30,000-90,000 on one thread); both give the same numbers.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from e3nn import o3

from ..orbitals import real_spherical_harmonics_up_to

#: Points of the sphere per coefficient in the least-squares identification of the table.
_POINTS_PER_COEFFICIENT = 4
#: Vectors per call from which e3nn's module beats the monomial table (benchmarks/harmonics.py).
E3NN_FROM = 3000


def packed_real_harmonics(max_l: int, vectors: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """(n, (max_l + 1)^2) [Y_0, Y_1, .., Y_max_l] of nonzero ``vectors`` (n, 3) (``lengths`` (n,):
    their norms, if already known), Y_l in columns
    l^2 .. (l + 1)^2 - 1: the values of :func:`real_spherical_harmonics_up_to` to float64
    round-off, differentiable, on the device and dtype of ``vectors``. Law: Y_l(R v) =
    irrep_wigner(l, (-1)^l, R) Y_l(v) for proper or improper rotations R; Y_l(c v) = Y_l(v), c > 0.
    """
    unit = vectors / (vectors.norm(dim=-1) if lengths is None else lengths)[:, None]
    if len(vectors) >= E3NN_FROM:
        return e3nn_harmonics(max_l, unit)
    return table_harmonics(max_l, unit)


def table_harmonics(max_l: int, unit: torch.Tensor) -> torch.Tensor:
    """:func:`packed_real_harmonics` of unit vectors (n, 3) from the monomial table."""
    rows, table = _device_table(max_l, unit.dtype, unit.device)
    return _monomials(unit, rows, max_l + 1).T @ table


def e3nn_harmonics(max_l: int, unit: torch.Tensor) -> torch.Tensor:
    """:func:`packed_real_harmonics` of unit vectors (n, 3) from e3nn, fed (y, z, x) so that its
    harmonics are nhamil's canonical ones (``nhamil.orbitals``)."""
    return _e3nn_module(max_l)(unit[:, [1, 2, 0]])


@lru_cache(maxsize=8)
def _e3nn_module(max_l: int) -> o3.SphericalHarmonics:
    """e3nn's harmonics l = 0 .. max_l, orthonormal on the sphere; building one costs about
    0.5 ms, so it is built once per max_l (it holds no parameters and works on any device)."""
    return o3.SphericalHarmonics(list(range(max_l + 1)), normalize=False, normalization="integral")


@lru_cache(maxsize=16)
def _device_table(max_l: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`_power_rows` of the exponents, coefficient table) of :func:`_monomial_table`, on
    ``device``, the table in ``dtype``: converted once, not per call."""
    exponents, table = _monomial_table(max_l)
    return _power_rows(exponents, max_l + 1).to(device), table.to(device=device, dtype=dtype)


@lru_cache(maxsize=8)
def _monomial_table(max_l: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(exponents (n_monomials, 3) long, coefficients (n_monomials, (max_l + 1)^2) float64):
    Y_l = sum over the degree-l monomials of coefficient * x^a y^b z^c on the unit sphere."""
    exponents = torch.tensor(
        [(a, b, l - a - b) for l in range(max_l + 1) for a in range(l, -1, -1) for b in range(l - a, -1, -1)]
    )
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(_POINTS_PER_COEFFICIENT * len(exponents), 3, generator=generator, dtype=torch.float64)
    points = points / points.norm(dim=-1, keepdim=True)
    monomials = _monomials(points, _power_rows(exponents, max_l + 1), max_l + 1).T
    degree = exponents.sum(dim=1)
    table = torch.zeros(len(exponents), (max_l + 1) ** 2, dtype=torch.float64)
    for l, harmonics in enumerate(real_spherical_harmonics_up_to(max_l, points)):
        rows = degree == l
        table[rows, l * l : (l + 1) ** 2] = torch.linalg.lstsq(monomials[:, rows], harmonics).solution
    return exponents, table


def _power_rows(exponents: torch.Tensor, n_powers: int) -> torch.Tensor:
    """(3, n_monomials) rows of the powers table of :func:`_monomials` that hold x^a, y^b and z^c
    for the exponents (n_monomials, 3) (a, b, c), all below ``n_powers``: x^k in row k - 1, y^k in
    row n_powers + k - 1, z^k in row 2 n_powers + k - 1, and 1 in row 3 n_powers."""
    rows = exponents.T - 1 + n_powers * torch.arange(3)[:, None]
    return torch.where(exponents.T == 0, 3 * n_powers, rows)


def _monomials(unit: torch.Tensor, rows: torch.Tensor, n_powers: int) -> torch.Tensor:
    """(n_monomials, n) x^a y^b z^c of ``unit`` (n, 3) for the :func:`_power_rows` ``rows`` of
    powers 0 .. ``n_powers`` - 1 (monomials first: every gather runs along the leading axis, the
    fast one)."""
    padded = torch.nn.functional.pad(unit, (0, 1), value=1.0).T[:, None, :]  # (4, 1, n): rows x, y, z, 1
    powers = padded.expand(-1, n_powers, -1).cumprod(dim=1)  # (4, n_powers, n): powers 1 .. n_powers
    factors = powers.reshape(4 * n_powers, -1).index_select(0, rows.flatten()).view(3, rows.shape[1], -1)
    return factors[0] * factors[1] * factors[2]
