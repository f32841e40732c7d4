"""Radial part of the density expansion: GTO basis, radial integrals of a Gaussian atom, cutoff.

An atom at distance d from the centre carries the normalized Gaussian density
g(r) = (2 pi sigma^2)^(-3/2) exp(-|r - d|^2 / (2 sigma^2)). Its coefficients on the orthonormal
basis R_n(r) Y_lm(r^) are, by the expansion of exp(x cos theta) in Legendre polynomials,
``I_nl(d) Y_lm(d^)`` with the radial integral

    I_nl(d) = 4 pi (2 pi sigma^2)^(-3/2) int_0^extent R_n(r) r^2 exp(-(r^2 + d^2) / (2 sigma^2))
              i_l(r d / sigma^2) dr,

i_l the modified spherical Bessel function of the first kind, and extent = cutoff, or infinity
for ``radial_domain="unbounded"`` (where R_n is orthonormal on [0, inf)). ``I_nl`` has units
Å^(-3/2) (the basis is orthonormal with weight r^2 dr). It is computed in float64 quadrature
with SciPy on a grid of d in [0, cutoff] and evaluated in torch by a cubic Hermite spline
(values and exact derivatives at the nodes), so that it is fast, differentiable and runs on any
device.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy.special import gamma, gammainc, ive

from .settings import DensitySettings

#: Gauss-Legendre nodes of the r integral on [0, cutoff].
_QUADRATURE_NODES = 256
#: Spline nodes per Gaussian width: interpolation error ~ (1/32)^4 * 3/384, about 1e-8 relative.
_NODES_PER_WIDTH = 32
#: Unbounded domain: the r integral stops this many Gaussian widths beyond the cutoff, where
#: exp(-(r - d)^2 / (2 sigma^2)) < 1e-31 for every d <= cutoff.
_TAIL_WIDTHS = 12
#: Below this argument exp(-x) i_l(x) comes from its Taylor series (1/x is unsafe at 0).
_SERIES_BELOW = 1e-3


def cutoff_function(distances: torch.Tensor, settings: DensitySettings) -> torch.Tensor:
    """Smooth weight (same shape as ``distances``, Å): 1 below ``cutoff - cutoff_width``, then
    a shifted cosine down to 0 at ``cutoff``, and 0 beyond. Continuous with its first derivative."""
    scale = 0.5 * math.pi / settings.cutoff_width
    remaining = torch.rsub(distances, settings.cutoff * scale, alpha=scale).clamp(0.0, 0.5 * math.pi)
    return torch.sin(remaining).square()  # = (1 + cos(pi (d - cutoff + width) / width)) / 2, exactly 0 beyond


def radial_integrals(distances: torch.Tensor, settings: DensitySettings) -> torch.Tensor:
    """(n, max_angular + 1, max_radial) radial integrals I_nl(d) of ``distances`` (n,) in Å.

    Cubic Hermite spline of :func:`radial_integral_reference` (about 1e-8 relative to the
    largest value), evaluated per interval as a cubic in the position u in [0, 1] within it (the
    cutoff itself as u = 0 of a last, constant-plus-slope piece); distances beyond the cutoff are
    clamped to it (multiply by :func:`cutoff_function`, which is 0 there). Device and dtype follow
    ``distances``.
    """
    coefficients = _spline_tensor(settings, distances.dtype, distances.device)
    n_intervals = len(coefficients) - 1
    position = (distances * (n_intervals / settings.cutoff)).clamp(0.0, n_intervals)
    index = position.long()
    u = (position - index)[:, None, None]
    c0, c1, c2, c3 = coefficients.index_select(0, index).unbind(dim=1)
    return torch.addcmul(c0, u, torch.addcmul(c1, u, torch.addcmul(c2, u, c3)))


@lru_cache(maxsize=16)
def _spline_tensor(settings: DensitySettings, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`_spline_coefficients` as a tensor of ``dtype`` on ``device``, converted once."""
    return torch.as_tensor(_spline_coefficients(settings), dtype=dtype, device=device)


@lru_cache(maxsize=16)
def _spline_coefficients(settings: DensitySettings) -> np.ndarray:
    """(n_intervals + 1, 4, max_angular + 1, max_radial) coefficients c_k of the cubic sum_k c_k u^k
    on each interval of a uniform grid on [0, cutoff]: the Hermite cubic that matches the values
    and d-derivatives of :func:`radial_integral_reference` at both ends; then the value and slope
    at the cutoff (c_2 = c_3 = 0), the piece that the cutoff itself falls in."""
    n_nodes = math.ceil(_NODES_PER_WIDTH * settings.cutoff / settings.gaussian_width) + 1
    values, derivatives = radial_integral_reference(np.linspace(0.0, settings.cutoff, n_nodes), settings)
    slopes = derivatives * (settings.cutoff / (n_nodes - 1))  # per unit of u
    left, right, slope_left, slope_right = values[:-1], values[1:], slopes[:-1], slopes[1:]
    cubics = np.stack(
        [
            left,
            slope_left,
            3 * (right - left) - 2 * slope_left - slope_right,
            2 * (left - right) + slope_left + slope_right,
        ],
        axis=1,
    )
    end = np.stack([values[-1], slopes[-1], np.zeros_like(values[-1]), np.zeros_like(values[-1])])
    return np.concatenate([cubics, end[None]])


def radial_integral_reference(distances: np.ndarray, settings: DensitySettings) -> tuple[np.ndarray, np.ndarray]:
    """I_nl(d) and dI_nl/dd, each (n, max_angular + 1, max_radial), by float64 quadrature.

    The product exp(-(r^2 + d^2)/(2 sigma^2)) i_l(x), x = r d / sigma^2, is evaluated as
    exp(-(r - d)^2/(2 sigma^2)) * [exp(-x) i_l(x)], which neither overflows nor underflows.
    Derivative: i_l'(x) = (l i_(l-1)(x) + (l + 1) i_(l+1)(x)) / (2l + 1).
    """
    sigma2 = settings.gaussian_width**2
    r, weights = _quadrature(_integration_extent(settings))
    d = np.asarray(distances, dtype=np.float64)[:, None]
    basis = orthonormal_gto_basis(r, settings) * (weights * r**2)[:, None]
    gaussian = np.exp(-((r - d) ** 2) / (2 * sigma2))
    bessel = _scaled_spherical_in(settings.max_angular + 1, r * d / sigma2)
    ls = np.arange(settings.max_angular + 1)
    lower = np.concatenate([np.zeros_like(bessel[..., :1]), bessel[..., :-2]], axis=-1)
    bessel_prime = (ls * lower + (ls + 1) * bessel[..., 1:]) / (2 * ls + 1)
    kernel = gaussian[..., None] * bessel[..., :-1]
    kernel_prime = gaussian[..., None] * (r[:, None] * bessel_prime - d[..., None] * bessel[..., :-1]) / sigma2
    prefactor = 4 * np.pi * (2 * np.pi * sigma2) ** -1.5
    return tuple(prefactor * np.einsum("dql,qn->dln", k, basis, optimize=True) for k in (kernel, kernel_prime))


def orthonormal_gto_basis(r: np.ndarray, settings: DensitySettings) -> np.ndarray:
    """(len(r), max_radial) GTO radial functions r^n exp(-r^2 / (2 s_n^2)),
    s_n = cutoff * max(sqrt(n), 1) / max_radial, each normalized, then Löwdin-orthonormalized
    (S^(-1/2)) with weight r^2 dr on [0, cutoff], or on [0, inf) for
    ``radial_domain="unbounded"``. Units Å^(-3/2)."""
    overlap = _gto_overlap(settings)
    norms = np.sqrt(np.diag(overlap))
    eigenvalues, vectors = np.linalg.eigh(overlap / np.outer(norms, norms))
    return (_gto(r, settings) / norms) @ (vectors / np.sqrt(eigenvalues)) @ vectors.T


def _gto_overlap(settings: DensitySettings) -> np.ndarray:
    """(max_radial, max_radial) S_nm = int_0^R r^(n + m + 2) exp(-a r^2) dr of the raw GTOs,
    a = 1/(2 s_n^2) + 1/(2 s_m^2), R = cutoff or inf: Gamma(k) P(k, a R^2) / (2 a^k) with
    k = (n + m + 3) / 2 and P the regularized lower incomplete gamma function."""
    n = np.arange(settings.max_radial)
    inverse = 0.5 / _gto_widths(settings) ** 2
    rate = inverse[:, None] + inverse[None, :]
    k = (n[:, None] + n[None, :] + 3) / 2
    radius = settings.cutoff if settings.radial_domain == "cutoff" else np.inf
    return gamma(k) * gammainc(k, rate * radius**2) / (2 * rate**k)


def _integration_extent(settings: DensitySettings) -> float:
    """Upper end (Å) of the r integral of :func:`radial_integral_reference`: the cutoff, or for
    the unbounded domain the point beyond which no Gaussian within the cutoff reaches."""
    if settings.radial_domain == "cutoff":
        return settings.cutoff
    return settings.cutoff + _TAIL_WIDTHS * settings.gaussian_width


def _quadrature(extent: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes (Å) and weights of an integral over [0, extent]."""
    nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    return 0.5 * extent * (nodes + 1.0), 0.5 * extent * weights


def _gto_widths(settings: DensitySettings) -> np.ndarray:
    """(max_radial,) widths s_n = cutoff * max(sqrt(n), 1) / max_radial, Å."""
    n = np.arange(settings.max_radial)
    return settings.cutoff * np.maximum(np.sqrt(n), 1.0) / settings.max_radial


def _gto(r: np.ndarray, settings: DensitySettings) -> np.ndarray:
    """(len(r), max_radial) raw GTOs r^n exp(-r^2 / (2 s_n^2))."""
    n = np.arange(settings.max_radial)
    return r[:, None] ** n * np.exp(-(r[:, None] ** 2) / (2 * _gto_widths(settings) ** 2))


def _scaled_spherical_in(max_l: int, x: np.ndarray) -> np.ndarray:
    """(..., max_l + 1) exp(-x) i_l(x) for x >= 0 (``x.shape`` = ...), l = 0 .. max_l."""
    l = np.arange(max_l + 1)
    x = x[..., None]
    safe = np.maximum(x, _SERIES_BELOW)
    closed = np.sqrt(np.pi / (2 * safe)) * ive(l + 0.5, safe)
    double_factorial = np.cumprod(2 * l + 1)
    half_x2 = 0.5 * x**2
    series = (
        np.exp(-x)
        * x**l
        / double_factorial
        * (1 + half_x2 / (2 * l + 3) + half_x2**2 / (2 * (2 * l + 3) * (2 * l + 5)))
    )
    return np.where(x < _SERIES_BELOW, series, closed)
