"""Symmetry laws, the density sum rule, precision and differentiability of nhamil.features."""

from __future__ import annotations

import time

import ase.build
import numpy as np
import pytest
import torch

from nhamil.features import (
    DensitySettings,
    EquivariantFeatures,
    atom_centered_features,
    couple,
    density_expansion,
    neighbor_pairs,
    ordered_pair_features,
    pair_density,
    pair_features,
    radial_integral_reference,
    radial_integrals,
    symmetrized_pair_features,
)
from nhamil.features import density as density_module
from nhamil.features.families import atom_samples
from nhamil.features.harmonics import packed_real_harmonics
from nhamil.features.neighbors import _ALL_PAIRS_UP_TO, neighbor_displacements
from nhamil.features.products import couple_blocks
from nhamil.features.radial import _quadrature, orthonormal_gto_basis
from nhamil.orbitals import clebsch_gordan, real_spherical_harmonics_up_to
from nhamil.structures import Structures
from nhamil.testing import Features, assert_equivariant

DEFAULTS = DensitySettings()
#: Smaller than the defaults to keep the tests quick; no symmetry law depends on the settings.
SETTINGS = DensitySettings(max_radial=4, max_angular=4)
#: featomic's radial convention: basis and projection over all space.
UNBOUNDED = DensitySettings(max_radial=4, max_angular=4, radial_domain="unbounded")
SPECIES = (1, 6, 8)
MAX_LAMBDA = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def molecules(*names: str, seed: int = 0) -> list[ase.Atoms]:
    frames = []
    for k, name in enumerate(names):
        atoms = ase.build.molecule(name)
        atoms.rattle(0.05, seed=seed + k)
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module")
def batch() -> Structures:
    """Water and ethanol, rattled so that no symmetry hides an error."""
    return Structures.from_atoms(molecules("H2O", "CH3CH2OH"))


def all_pairs(structures: Structures, *, keep=lambda zi, zj: True) -> torch.Tensor:
    """(n, 3) rows (system, i, j), i != j, of every ordered pair that ``keep(Z_i, Z_j)`` accepts."""
    rows = []
    for s in range(structures.n_systems):
        numbers = structures.numbers[structures.ptr[s] : structures.ptr[s + 1]].tolist()
        rows += [(s, i, j) for i, zi in enumerate(numbers) for j, zj in enumerate(numbers) if i != j and keep(zi, zj)]
    return torch.tensor(rows, dtype=torch.long)


def moved(structures: Structures, positions: torch.Tensor) -> Structures:
    return Structures(positions, structures.numbers, structures.system, structures.ptr)


def blocks_of(result) -> dict:
    """(lam, sigma) -> tensor of any family's result (a dict keyed by l means sigma = +1)."""
    if isinstance(result, EquivariantFeatures):
        return result.blocks
    return {(l, 1): block for l, block in result.items()}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-10) -> None:
    """Equal up to ``rtol`` times the largest magnitude of ``expected``."""
    scale = expected.abs().max().clamp_min(1e-300)
    error = (actual - expected).abs().max()
    assert error <= rtol * scale, f"error {error:.3e} vs scale {scale:.3e}"


def all_families(structures: Structures) -> dict:
    """Every family on fixed pairs of ``structures``, as dicts of (lam, sigma) blocks; the
    densities also at the default settings (l up to 6)."""
    same = all_pairs(structures, keep=lambda zi, zj: zi == zj)
    same = same[same[:, 1] < same[:, 2]]
    ordered = all_pairs(structures, keep=lambda zi, zj: zi < zj)
    plus, minus = symmetrized_pair_features(structures, SPECIES, SETTINGS, same, max_lambda=MAX_LAMBDA)
    results = {
        "rho": density_expansion(structures, SPECIES, SETTINGS),
        "g": pair_density(structures, all_pairs(structures), SETTINGS),
        "rho_defaults": density_expansion(structures, SPECIES, DEFAULTS),
        "rho_unbounded": density_expansion(structures, SPECIES, UNBOUNDED),
        "g_defaults": pair_density(structures, all_pairs(structures), DEFAULTS),
        "nu1": atom_centered_features(structures, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=1),
        "nu2": atom_centered_features(structures, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=2),
        "pair": pair_features(structures, SPECIES, SETTINGS, all_pairs(structures), max_lambda=MAX_LAMBDA),
        "plus": plus,
        "minus": minus,
        "ordered": ordered_pair_features(structures, SPECIES, SETTINGS, ordered, max_lambda=MAX_LAMBDA),
    }
    return {name: blocks_of(result) for name, result in results.items()}


@pytest.mark.parametrize("max_l", [1, 3, 6])
def test_packed_harmonics_match_the_orbital_convention(max_l):
    """The monomial-table harmonics equal e3nn's (the project's convention) in value and gradient,
    for vectors of any length; max_l = 0 gives their first column."""
    vectors = torch.randn(50, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    vectors = (vectors * torch.linspace(0.1, 5.0, 50, dtype=torch.float64)[:, None]).requires_grad_()
    weights = torch.randn((max_l + 1) ** 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = packed_real_harmonics(max_l, vectors)
    expected = torch.cat(real_spherical_harmonics_up_to(max_l, vectors), dim=-1)
    assert_close(ours, expected, rtol=1e-13)
    assert_close(packed_real_harmonics(0, vectors), expected[:, :1], rtol=1e-13)
    (gradient,) = torch.autograd.grad((ours * weights).sum(), vectors)
    (expected_gradient,) = torch.autograd.grad((expected * weights).sum(), vectors)
    assert_close(gradient, expected_gradient, rtol=1e-12)


@pytest.mark.parametrize("sizes", [(1, 2, 30, 7), (30,), (5, _ALL_PAIRS_UP_TO + 20), (_ALL_PAIRS_UP_TO + 20,)])
def test_neighbor_pairs_match_brute_force(sizes):
    """Every candidate search (all pairs of small structures, from a grid built once per size for
    a single one; the cell list once a structure has more than _ALL_PAIRS_UP_TO atoms) finds
    exactly the pairs within the cutoff, sorted."""
    rng = np.random.default_rng(6)
    frames = [ase.Atoms(f"H{n}", rng.uniform(0.0, 2.0 * n ** (1 / 3), (n, 3))) for n in sizes]
    structures = Structures.from_atoms(frames)
    first, second = neighbor_pairs(structures, DEFAULTS.cutoff)
    expected = []
    for start, atoms in zip(structures.ptr[:-1].tolist(), frames, strict=True):
        close = atoms.get_all_distances() < DEFAULTS.cutoff
        expected += [[start + i, start + j] for i, j in zip(*np.nonzero(close), strict=True)]
    assert torch.stack([first, second], 1).tolist() == expected


def test_radial_spline_matches_quadrature():
    distances = np.random.default_rng(1).uniform(0.0, DEFAULTS.cutoff, 500)
    values, derivatives = radial_integral_reference(distances, DEFAULTS)
    d = torch.tensor(distances, requires_grad=True)
    spline = radial_integrals(d, DEFAULTS)
    assert_close(spline.detach(), torch.from_numpy(values), rtol=1e-8)
    slope = torch.autograd.functional.jacobian(lambda x: radial_integrals(x, DEFAULTS).sum((1, 2)), d).diagonal()
    assert_close(slope, torch.from_numpy(derivatives.sum((1, 2))), rtol=1e-6)


def test_radial_derivative_matches_finite_differences():
    distances, step = np.linspace(0.1, 3.9, 50), 1e-5
    _, derivatives = radial_integral_reference(distances, DEFAULTS)
    above, _ = radial_integral_reference(distances + step, DEFAULTS)
    below, _ = radial_integral_reference(distances - step, DEFAULTS)
    assert_close(torch.from_numpy((above - below) / (2 * step)), torch.from_numpy(derivatives), rtol=1e-8)


@pytest.mark.parametrize("domain, extent", [("cutoff", 1.0), ("unbounded", 10.0)])
def test_radial_basis_is_orthonormal(domain, extent):
    """On [0, cutoff], or for the unbounded domain on [0, 10 cutoff] (where the GTOs have died out)."""
    settings = DensitySettings(radial_domain=domain)
    r, weights = _quadrature(extent * settings.cutoff)
    basis = orthonormal_gto_basis(r, settings)
    overlap = basis.T @ (basis * (weights * r**2)[:, None])
    np.testing.assert_allclose(overlap, np.eye(settings.max_radial), atol=1e-9)


@pytest.mark.parametrize("domain", ["cutoff", "unbounded"])
def test_radial_integral_is_the_projection_of_the_gaussian(domain):
    """I_nl(d) Y_l0(z^) = int g(r - d z^) R_n(r) Y_l0(r^) d^3r by direct quadrature over r and
    cos(theta) (no Bessel functions), with r up to the cutoff or, unbounded, to 3 cutoffs."""
    settings = DensitySettings(max_radial=5, max_angular=3, radial_domain=domain)
    distances = np.array([0.0, 0.4, 1.7, 3.2, 3.9])
    r, r_weights = _quadrature(settings.cutoff * (1 if domain == "cutoff" else 3))
    cosines, cos_weights = np.polynomial.legendre.leggauss(200)
    separation2 = r[:, None, None] ** 2 + distances**2 - 2 * r[:, None, None] * cosines[:, None] * distances
    gaussian = np.exp(-separation2 / (2 * settings.gaussian_width**2)) / (2 * np.pi * settings.gaussian_width**2) ** 1.5
    basis = orthonormal_gto_basis(r, settings)
    for l in range(settings.max_angular + 1):
        y_l0 = np.sqrt((2 * l + 1) / (4 * np.pi)) * np.polynomial.legendre.legval(cosines, np.eye(l + 1)[l])
        direct = 2 * np.pi * np.einsum("rcd,r,c,rn->dn", gaussian, r_weights * r**2, cos_weights * y_l0, basis)
        values, _ = radial_integral_reference(distances, settings)
        np.testing.assert_allclose(
            values[:, l] * np.sqrt((2 * l + 1) / (4 * np.pi)), direct, atol=1e-10 * np.abs(direct).max()
        )


def test_unbounded_domain_reproduces_featomic():
    """featomic's GTO spherical expansion (if installed) equals nhamil's with the unbounded radial
    domain times 2^(3/2) (pi sigma^2)^(3/4), its L2-normalized Gaussian; centre atom included."""
    featomic = pytest.importorskip("featomic")
    frames = molecules("H2O", "CH3CH2OH")
    hypers = {
        "cutoff": {"radius": UNBOUNDED.cutoff, "smoothing": {"type": "ShiftedCosine", "width": UNBOUNDED.cutoff_width}},
        "density": {"type": "Gaussian", "width": UNBOUNDED.gaussian_width},
        "basis": {
            "type": "TensorProduct",
            "max_angular": UNBOUNDED.max_angular,
            "radial": {"type": "Gto", "max_radial": UNBOUNDED.max_radial - 1},
        },
    }
    theirs = featomic.SphericalExpansion(**hypers).compute(frames)
    structures = Structures.from_atoms(frames)
    ours = density_expansion(structures, SPECIES, UNBOUNDED)
    scale = 2**1.5 * (np.pi * UNBOUNDED.gaussian_width**2) ** 0.75
    for key, block in theirs.items():
        atoms = structures.ptr[block.samples.column("system")] + torch.as_tensor(block.samples.column("atom"))
        channel = SPECIES.index(key["neighbor_type"]) * UNBOUNDED.max_radial
        expected = ours[int(key["o3_lambda"])][atoms][..., channel : channel + UNBOUNDED.max_radial]
        assert_close(torch.as_tensor(block.values) / scale, expected, rtol=1e-7)


def test_coupling_map_is_orthogonal():
    for l1, l2 in [(1, 1), (2, 3), (3, 0), (4, 4)]:
        matrix = torch.cat(
            [clebsch_gordan(l1, l2, lam).flatten(0, 1) for lam in range(abs(l1 - l2), l1 + l2 + 1)], dim=1
        )
        assert_close(matrix.T @ matrix, torch.eye(matrix.shape[0], dtype=torch.float64), rtol=1e-13)


def test_coupling_swap_symmetry():
    """a (x) b = (-1)^(l1+l2+lam) (b (x) a) with channels swapped: why symmetric products drop half."""
    generator = torch.Generator().manual_seed(2)
    a, b = (torch.randn(4, 2 * l + 1, 3, generator=generator, dtype=torch.float64) for l in (2, 3))
    singles = []
    for lam in range(1, 6):
        singles.append(couple_blocks(a, b, range(lam, lam + 1)))
        swapped = couple_blocks(b, a, range(lam, lam + 1)).transpose(-1, -2)
        assert_close(singles[-1], (-1) ** (5 + lam) * swapped, rtol=1e-13)
    assert_close(couple_blocks(a, b, range(1, 6)), torch.cat(singles, dim=1), rtol=1e-14)


def _density(settings: DensitySettings):
    return lambda s: EquivariantFeatures(atom_samples(s), blocks_of(density_expansion(s, SPECIES, settings)))


def _pair_density(settings: DensitySettings):
    return lambda s: EquivariantFeatures(all_pairs(s), blocks_of(pair_density(s, all_pairs(s), settings)))


def _same_element_pairs(structures: Structures) -> torch.Tensor:
    same = all_pairs(structures, keep=lambda zi, zj: zi == zj)
    return same[same[:, 1] < same[:, 2]]


#: Every family of all_families as a function of the structures alone (its samples follow the atoms),
#: with the sign its blocks take when a pair's atoms swap (None: a swapped pair is another sample).
FAMILIES = {
    "rho": (_density(SETTINGS), None),
    "g": (_pair_density(SETTINGS), None),
    "rho_defaults": (_density(DEFAULTS), None),
    "rho_unbounded": (_density(UNBOUNDED), None),
    "g_defaults": (_pair_density(DEFAULTS), None),
    "nu1": (lambda s: atom_centered_features(s, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=1), None),
    "nu2": (lambda s: atom_centered_features(s, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=2), None),
    "pair": (lambda s: pair_features(s, SPECIES, SETTINGS, all_pairs(s), max_lambda=MAX_LAMBDA), None),
    "plus": (
        lambda s: symmetrized_pair_features(s, SPECIES, SETTINGS, _same_element_pairs(s), max_lambda=MAX_LAMBDA)[0],
        1,
    ),
    "minus": (
        lambda s: symmetrized_pair_features(s, SPECIES, SETTINGS, _same_element_pairs(s), max_lambda=MAX_LAMBDA)[1],
        -1,
    ),
    "ordered": (
        lambda s: ordered_pair_features(
            s, SPECIES, SETTINGS, all_pairs(s, keep=lambda zi, zj: zi < zj), max_lambda=MAX_LAMBDA
        ),
        None,
    ),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_is_equivariant(batch, name):
    """Rotations, inversion, translations and permutations of the atoms, each block nonzero, to 1e-10
    of its scale; samples follow the permuted atoms."""
    family, swap_sign = FAMILIES[name]
    assert_equivariant(family, batch, law=Features(swap_sign=swap_sign), seed=3)


def test_both_sigmas_and_families_present(batch):
    families = all_families(batch)
    assert set(families["rho"]) == {(l, 1) for l in range(SETTINGS.max_angular + 1)}
    for name in ("nu2", "pair", "plus", "minus", "ordered"):
        assert set(families[name]) == {(lam, s) for lam in range(MAX_LAMBDA + 1) for s in (1, -1)} - {(0, -1)}


def test_swapping_the_pair(batch):
    """g_ji = (-1)^l g_ij; symmetrized plus features keep and minus features flip their sign."""
    pairs = all_pairs(batch)
    swapped = pairs[:, [0, 2, 1]]
    forward, backward = pair_density(batch, pairs, SETTINGS), pair_density(batch, swapped, SETTINGS)
    for l, block in forward.items():
        assert_close(backward[l], (-1) ** l * block)
    same = all_pairs(batch, keep=lambda zi, zj: zi == zj)
    plus, minus = symmetrized_pair_features(batch, SPECIES, SETTINGS, same, max_lambda=MAX_LAMBDA)
    plus_swapped, minus_swapped = symmetrized_pair_features(
        batch, SPECIES, SETTINGS, same[:, [0, 2, 1]], max_lambda=MAX_LAMBDA
    )
    for key in plus.blocks:
        assert_close(plus_swapped.blocks[key], plus.blocks[key])
        assert_close(minus_swapped.blocks[key], -minus.blocks[key])


@pytest.mark.parametrize("cutoff", [4.0, 2.0])
def test_pair_densities_sum_to_the_atom_density(batch, cutoff):
    """sum over j of one species (j = i included, any distance) of g_ij = that channel of rho_i."""
    settings = DensitySettings(cutoff=cutoff, max_radial=4, max_angular=4)
    rho = density_expansion(batch, SPECIES, settings)
    pairs = torch.cat([all_pairs(batch), torch.stack([batch.system, *(2 * [_local(batch)])], 1)])
    g = pair_density(batch, pairs, settings)
    first = batch.ptr[pairs[:, 0]] + pairs[:, 1]
    second_species = torch.searchsorted(torch.tensor(SPECIES), batch.numbers[batch.ptr[pairs[:, 0]] + pairs[:, 2]])
    for l, block in g.items():
        summed = torch.zeros(len(batch.numbers), len(SPECIES), *block.shape[1:], dtype=block.dtype)
        summed.index_put_((first, second_species), block, accumulate=True)
        assert_close(summed.transpose(1, 2).flatten(2), rho[l])
    assert cutoff > 3 or (g[0] == 0).all(dim=(1, 2)).any(), "some pair should lie beyond the short cutoff"


def test_density_is_the_same_in_chunks_of_pairs(batch, monkeypatch):
    """Summing the pair densities a few pairs at a time changes nothing but round-off; pair
    densities of more pairs than a chunk (products per l) equal the packed ones exactly."""
    whole = density_expansion(batch, SPECIES, SETTINGS)
    pairs = all_pairs(batch)
    packed = pair_density(batch, pairs, SETTINGS)
    monkeypatch.setattr(density_module, "_PAIRS_PER_CHUNK", 7)
    chunked = density_expansion(batch, SPECIES, SETTINGS)
    for l, block in whole.items():
        assert_close(chunked[l], block, rtol=1e-14)
    for l, block in pair_density(batch, pairs, SETTINGS).items():  # beyond a chunk: one product per l
        assert torch.equal(block, packed[l])


def test_neighbor_pairs_without_self_pairs(batch):
    first, second = neighbor_pairs(batch, DEFAULTS.cutoff)
    distinct = neighbor_pairs(batch, DEFAULTS.cutoff, self_pairs=False)
    assert torch.equal(torch.stack(distinct), torch.stack([first, second])[:, first != second])


@pytest.mark.parametrize("names", [("H2O", "CH3CH2OH"), ("CH3CH2OH",)])
def test_neighbor_displacements_are_the_distinct_pairs_with_their_vectors(names):
    """The pairs of neighbor_pairs without self pairs, each with r_second - r_first and its length,
    whose gradient is the unit vector on the second atom and its opposite on the first."""
    structures = Structures.from_atoms(molecules(*names))
    positions = structures.positions.clone().requires_grad_()
    structures = Structures(positions, structures.numbers, structures.system, structures.ptr)
    first, second, vectors, distances = neighbor_displacements(structures, DEFAULTS.cutoff)
    expected_pairs = neighbor_pairs(structures, DEFAULTS.cutoff, self_pairs=False)
    assert torch.equal(torch.stack([first, second]), torch.stack(expected_pairs))
    assert torch.equal(vectors, positions[second] - positions[first])
    assert_close(distances, vectors.norm(dim=-1), rtol=1e-15)
    (gradient,) = torch.autograd.grad(distances.sum(), positions)
    unit = (vectors / distances[:, None]).detach()
    expected = torch.zeros_like(gradient).index_add_(0, second, unit).index_add_(0, first, -unit)
    assert_close(gradient, expected, rtol=1e-13)


def _local(structures: Structures) -> torch.Tensor:
    return torch.arange(len(structures.numbers)) - structures.ptr[structures.system]


def test_float32_is_close_to_float64(batch):
    single, double = all_families(batch.to(dtype=torch.float32)), all_families(batch)
    for name, blocks in double.items():
        for key, block in blocks.items():
            assert single[name][key].dtype == torch.float32
            assert_close(single[name][key].double(), block, rtol=1e-5)


def test_gradients_match_finite_differences(batch):
    pairs = torch.tensor([[1, 0, 3], [0, 0, 1]])

    def feature(positions: torch.Tensor) -> torch.Tensor:
        features = pair_features(moved(batch, positions), SPECIES, SETTINGS, pairs, max_lambda=MAX_LAMBDA)
        nu2 = atom_centered_features(moved(batch, positions), SPECIES, SETTINGS, max_lambda=2, correlation_order=2)
        return features.blocks[2, -1][0, 1, 40] + nu2.blocks[1, 1][4, 2, 300]

    gradient = assert_gradient_matches_finite_differences(feature, batch.positions)
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0


def assert_gradient_matches_finite_differences(function, positions: torch.Tensor) -> torch.Tensor:
    """Autograd gradient of the scalar ``function(positions)`` against central differences
    (step 1e-5 Å), to 1e-6 relative; returns the gradient."""
    leaf = positions.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(function(leaf), leaf)
    step, numeric = 1e-5, torch.zeros_like(gradient)
    for atom, axis in np.ndindex(*gradient.shape):
        shift = torch.zeros_like(positions)
        shift[atom, axis] = step
        numeric[atom, axis] = (function(positions + shift) - function(positions - shift)) / (2 * step)
    assert_close(gradient, numeric, rtol=1e-6)
    return gradient


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(batch):
    on_gpu = all_families(batch.to("cuda"))
    for name, blocks in all_families(batch).items():
        for key, block in blocks.items():
            assert on_gpu[name][key].device.type == "cuda"
            assert_close(on_gpu[name][key].cpu(), block)


def test_unknown_species_is_named(batch):
    with pytest.raises(ValueError, match=r"C \(Z=6\)"):
        density_expansion(batch, (1, 8), SETTINGS)
    with pytest.raises(ValueError, match="sorted"):
        density_expansion(batch, (8, 1, 6), SETTINGS)


def test_bad_pairs_are_refused(batch):
    kwargs = dict(max_lambda=2)
    with pytest.raises(ValueError, match="i != j"):
        pair_features(batch, SPECIES, SETTINGS, torch.tensor([[0, 1, 1]]), **kwargs)
    with pytest.raises(ValueError, match="outside their system"):
        pair_density(batch, torch.tensor([[0, 0, 3]]), SETTINGS)
    with pytest.raises(ValueError, match="same element"):
        symmetrized_pair_features(batch, SPECIES, SETTINGS, torch.tensor([[0, 0, 1]]), **kwargs)
    with pytest.raises(ValueError, match="lower atomic number"):
        ordered_pair_features(batch, SPECIES, SETTINGS, torch.tensor([[0, 0, 1]]), **kwargs)


def test_single_structure_pairs_match_the_batch(batch):
    """A structure alone (its own index path) gives the g_ij it has in a batch, self pairs included,
    with finite gradients; its bad pairs are refused too."""
    water = Structures.from_atoms(molecules("H2O"))
    pairs = torch.cat([all_pairs(water), torch.tensor([[0, 1, 1]])])
    positions = water.positions.clone().requires_grad_()
    alone = pair_density(moved(water, positions), pairs, SETTINGS)
    in_batch = pair_density(batch, pairs, SETTINGS)
    for l, block in alone.items():
        assert_close(block, in_batch[l])
    (gradient,) = torch.autograd.grad(sum(block.sum() for block in alone.values()), positions)
    assert torch.isfinite(gradient).all() and gradient.abs().max() > 0
    for bad, message in (([[0, 0, 3]], "outside their system"), ([[1, 0, 1]], "systems outside")):
        with pytest.raises(ValueError, match=message):
            pair_density(water, torch.tensor(bad), SETTINGS)


def test_concatenate_keeps_keys_of_either_side(batch):
    nu1 = atom_centered_features(batch, SPECIES, SETTINGS, max_lambda=2, correlation_order=1)
    nu2 = atom_centered_features(batch, SPECIES, SETTINGS, max_lambda=2, correlation_order=2)
    both = nu1.concatenate(nu2)
    assert both.n_features[0, 1] == nu1.n_features[0, 1] + nu2.n_features[0, 1]
    assert both.n_features[1, -1] == nu2.n_features[1, -1]
    assert both.to(dtype=torch.float32).blocks[2, 1].dtype == torch.float32
    with pytest.raises(ValueError, match="same samples"):
        nu1.concatenate(pair_features(batch, SPECIES, SETTINGS, all_pairs(batch), max_lambda=2))


def test_symmetric_products_keep_the_non_redundant_half():
    """Every nonzero product of features with themselves is, up to sign, one kept feature, kept once.
    (Random features: a real density can have products that vanish for every atom.)"""
    generator = torch.Generator().manual_seed(5)
    rho = {l: torch.randn(5, 2 * l + 1, 3, generator=generator, dtype=torch.float64) for l in range(4)}
    full, half = (couple(rho, rho, max_lambda=3, symmetric=symmetric) for symmetric in (False, True))
    for key, block in half.items():
        kept = _unit_columns(block)
        every = _unit_columns(full[key])
        assert len(kept) == block.shape[-1], f"{key}: a kept feature is zero"
        assert ((every @ kept.T).abs().max(dim=1).values > 1 - 1e-10).all(), f"{key}: a product was dropped"
        overlaps = (kept @ kept.T).abs() - torch.eye(len(kept), dtype=kept.dtype)
        assert overlaps.max() < 1 - 1e-8, f"{key}: a feature is kept twice"


def _unit_columns(block: torch.Tensor) -> torch.Tensor:
    """(n_nonzero, n * (2 lam + 1)) normalized nonzero features of a (n, 2 lam + 1, f) block."""
    columns = block.flatten(0, 1).T
    norms = columns.norm(dim=1)
    keep = norms > 1e-10 * norms.max()
    return columns[keep] / norms[keep, None]


@pytest.mark.parametrize("name, copies, species", [("H2O", 100, (1, 8)), ("CH3CH2OH", 10, (1, 6, 8))])
def test_print_timings(name, copies, species):
    """Prints (asserts nothing about) the time of every family at the default settings, max_lambda 4,
    for all atoms and all pairs of a batch of molecules."""
    structures = Structures.from_atoms(molecules(*(copies * [name])))
    same = all_pairs(structures, keep=lambda zi, zj: zi == zj)
    kwargs = dict(max_lambda=MAX_LAMBDA)
    timings = {}
    for label, run in {
        "rho": lambda: density_expansion(structures, species, DEFAULTS),
        "nu2": lambda: atom_centered_features(structures, species, DEFAULTS, correlation_order=2, **kwargs),
        "same-element pairs": lambda: symmetrized_pair_features(
            structures, species, DEFAULTS, same[same[:, 1] < same[:, 2]], **kwargs
        ),
        "other pairs": lambda: ordered_pair_features(
            structures, species, DEFAULTS, all_pairs(structures, keep=lambda zi, zj: zi < zj), **kwargs
        ),
    }.items():
        start = time.perf_counter()
        run()
        timings[label] = time.perf_counter() - start
    print(f"\n{copies} x {name}: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in timings.items()))
