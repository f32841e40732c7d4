"""Higher-order and many-centre features: nu = 3 (plain and contracted), pair nu = 2, both-centre
pairs, triplets, message passing, and the sparse neighbour lists they stand on."""

from __future__ import annotations

import ase
import numpy as np
import pytest
import torch
from test_features import all_pairs, assert_close, assert_gradient_matches_finite_differences, molecules, moved

from nhamil.features import (
    ChannelContraction,
    DensitySettings,
    atom_centered_features,
    both_centre_pair_features,
    couple,
    density_expansion,
    fit_contractions,
    message_passing_features,
    neighbor_pairs,
    neighbor_triplets,
    pair_features,
    symmetrized_pair_features,
    triplet_features,
)
from nhamil.structures import Structures
from nhamil.testing import Features, assert_equivariant

pytestmark = pytest.mark.usefixtures("one_thread")

#: Small settings: products of three densities grow as (max_radial * n_species)^3.
SETTINGS = DensitySettings(max_radial=3, max_angular=2)
SPECIES = (1, 6, 8)
MAX_LAMBDA = 2


@pytest.fixture(scope="module")
def batch() -> Structures:
    return Structures.from_atoms(molecules("H2O", "CH3CH2OH", seed=10))


@pytest.fixture(scope="module")
def contractions(batch):
    return fit_contractions(batch, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=3, n_channels=20)


def new_families(structures: Structures, contractions, only: str | None = None) -> dict:
    """(lam, sigma) blocks of every new family on fixed samples of ``structures``; with ``only``,
    the EquivariantFeatures of that family alone."""
    pairs, kwargs = all_pairs(structures), dict(max_lambda=MAX_LAMBDA)
    same = all_pairs(structures, keep=lambda zi, zj: zi == zj)

    def symmetrized(k):
        return lambda: symmetrized_pair_features(
            structures,
            SPECIES,
            SETTINGS,
            same[same[:, 1] < same[:, 2]],
            correlation_order=2,
            both_centres=True,
            **kwargs,
        )[k]

    families = {
        "nu3": lambda: atom_centered_features(structures, SPECIES, SETTINGS, correlation_order=3, **kwargs),
        "nu3_contracted": lambda: atom_centered_features(
            structures, SPECIES, SETTINGS, correlation_order=3, contractions=contractions, **kwargs
        ),
        "pair_nu2": lambda: pair_features(structures, SPECIES, SETTINGS, pairs, correlation_order=2, **kwargs),
        "both_centres": lambda: both_centre_pair_features(structures, SPECIES, SETTINGS, pairs, **kwargs),
        "plus": symmetrized(0),
        "minus": symmetrized(1),
        "triplets": lambda: triplet_features(
            structures, SPECIES, SETTINGS, neighbor_triplets(structures, 3.0), **kwargs
        ),
        "message_passing": lambda: message_passing_features(structures, SPECIES, SETTINGS, **kwargs),
    }
    if only is not None:
        return {only: families[only]()}
    return {name: compute().blocks for name, compute in families.items()}


def _new_family(name: str, contractions):
    """One family of new_families as a function of the structures alone (its samples follow the atoms)."""
    return lambda structures: new_families(structures, contractions, only=name)[name]


@pytest.mark.parametrize(
    "name, swap_sign",
    [
        ("nu3", None),
        ("nu3_contracted", None),
        ("pair_nu2", None),
        ("both_centres", None),
        ("plus", 1),
        ("minus", -1),
        ("triplets", None),
        ("message_passing", None),
    ],
)
def test_new_families_are_equivariant(batch, contractions, name, swap_sign):
    """Rotations, inversion, translations and permutations of the atoms, every (lam, sigma) block
    present and nonzero, to 1e-10 of its scale; samples follow the permuted atoms."""
    blocks = new_families(batch, contractions, only=name)[name]
    assert set(blocks.blocks) == {(lam, s) for lam in range(MAX_LAMBDA + 1) for s in (1, -1)}, name
    assert_equivariant(_new_family(name, contractions), batch, law=Features(swap_sign=swap_sign), seed=13)


def test_swapping_a_symmetrized_pair_with_every_option(batch):
    same = all_pairs(batch, keep=lambda zi, zj: zi == zj)
    kwargs = dict(max_lambda=MAX_LAMBDA, correlation_order=2, both_centres=True)
    plus, minus = symmetrized_pair_features(batch, SPECIES, SETTINGS, same, **kwargs)
    plus_swapped, minus_swapped = symmetrized_pair_features(batch, SPECIES, SETTINGS, same[:, [0, 2, 1]], **kwargs)
    for key in plus.blocks:
        assert_close(plus_swapped.blocks[key], plus.blocks[key])
        assert_close(minus_swapped.blocks[key], -minus.blocks[key])


def test_message_passing_is_the_sum_of_both_centre_features_recoupled(batch):
    """sum_j over neighbours of element a of |rho_ij^(1,1)> and |rho_i^[1<-1]> differ by an
    orthogonal recoupling within each (l_i, l_g, l_j, lam): with no lambda truncated, every
    block has the same norm per atom."""
    full = 3 * SETTINGS.max_angular
    first, second = neighbor_pairs(batch, SETTINGS.cutoff)
    pairs = torch.stack(
        [batch.system[first], first - batch.ptr[batch.system[first]], second - batch.ptr[batch.system[first]]], dim=1
    )[first != second]
    both = both_centre_pair_features(batch, SPECIES, SETTINGS, pairs, max_lambda=full)
    message = message_passing_features(batch, SPECIES, SETTINGS, max_lambda=full)
    atom = batch.ptr[pairs[:, 0]] + pairs[:, 1]
    element = torch.searchsorted(torch.tensor(SPECIES), batch.numbers[batch.ptr[pairs[:, 0]] + pairs[:, 2]])
    for key, block in both.blocks.items():
        summed = block.new_zeros(len(batch.numbers), len(SPECIES), *block.shape[1:])
        summed.index_put_((atom, element), block, accumulate=True)
        assert_close(message.blocks[key].flatten(1).norm(dim=1), summed.flatten(1).norm(dim=1), rtol=1e-12)


def test_triplets_over_all_neighbour_pairs_sum_to_the_cubed_density():
    """For one element, sum over every (i1, i2), self included, of ((g_ii1 g_ii2)_k rho_i)_lam is
    ((rho_i rho_i)_k rho_i)_lam: g summed over j is rho."""
    structures = Structures.from_atoms([ase.Atoms("H5", np.random.default_rng(15).uniform(-1.2, 1.2, (5, 3)))])
    n = len(structures.numbers)
    triplets = torch.tensor([(0, i, j, k) for i in range(n) for j in range(n) for k in range(n)])
    features = triplet_features(structures, (1,), SETTINGS, triplets, max_lambda=MAX_LAMBDA)
    rho = density_expansion(structures, (1,), SETTINGS)
    expected = couple(couple(rho, rho, max_lambda=MAX_LAMBDA + SETTINGS.max_angular), rho, max_lambda=MAX_LAMBDA)
    for key, block in features.blocks.items():
        summed = block.new_zeros(n, *block.shape[1:]).index_add_(0, triplets[:, 1], block)
        assert_close(summed, expected[key])


def test_full_rank_contraction_keeps_every_inner_product(batch):
    """With as many channels as the data's rank, a contraction fitted on a batch keeps the inner
    products between its samples; fewer channels lose some."""
    nu2 = atom_centered_features(batch, SPECIES, SETTINGS, max_lambda=MAX_LAMBDA, correlation_order=2)
    rows = {key: block.flatten(0, 1) for key, block in nu2.blocks.items()}
    full = ChannelContraction.fit(nu2.blocks, n_channels=10_000)
    few = ChannelContraction.fit(nu2.blocks, n_channels=3)
    for key, block in full(nu2.blocks).items():
        kept = block.flatten(0, 1)
        assert_close(kept @ kept.T, rows[key] @ rows[key].T, rtol=1e-10)
        assert few(nu2.blocks)[key].shape[-1] == 3
    lost = few(nu2.blocks)[0, 1].flatten(0, 1)
    assert (lost @ lost.T - rows[0, 1] @ rows[0, 1].T).abs().max() > 1e-6 * (rows[0, 1] ** 2).sum(1).max()
    restored = ChannelContraction.from_state(full.state())
    assert all(torch.equal(restored.projections[k], w) for k, w in full.projections.items())
    with pytest.raises(KeyError, match="no contraction"):
        few({(9, 1): torch.zeros(1, 19, 2)})


@pytest.mark.parametrize("cutoff", [0.9, 2.0, 4.5])
def test_neighbor_lists_match_all_pairs(cutoff):
    """The cell list finds exactly the pairs and triplets an all-pairs search finds."""
    rng = np.random.default_rng(16)
    frames = [ase.Atoms(f"H{n}", rng.uniform(-4, 4, (n, 3))) for n in (1, 2, 30, 7)]
    structures = Structures.from_atoms(frames)
    first, second = neighbor_pairs(structures, cutoff)
    triplets = neighbor_triplets(structures, cutoff)
    expected_pairs, expected_triplets = [], []
    for s, atoms in enumerate(frames):
        close = atoms.get_all_distances() < cutoff
        start = int(structures.ptr[s])
        expected_pairs += [(start + i, start + j) for i, j in zip(*np.nonzero(close), strict=True)]
        expected_triplets += [
            (s, i, j, k)
            for i, j, k in np.ndindex(*3 * [len(atoms)])
            if len({i, j, k}) == 3 and close[i, j] and close[i, k]
        ]
    assert torch.stack([first, second], 1).tolist() == [list(p) for p in expected_pairs]
    assert triplets.tolist() == [list(t) for t in expected_triplets]


def test_float32_and_gradients(batch, contractions):
    single, double = new_families(batch.to(dtype=torch.float32), contractions), new_families(batch, contractions)
    for name, blocks in double.items():
        for key, block in blocks.items():
            assert single[name][key].dtype == torch.float32
            assert_close(single[name][key].double(), block, rtol=1e-4)
    methanol = Structures.from_atoms(molecules("CH3OH", seed=17))  # not planar: pseudoscalars live
    triplets = neighbor_triplets(methanol, SETTINGS.cutoff)

    def feature(positions: torch.Tensor) -> torch.Tensor:
        structures = moved(methanol, positions)
        return (
            triplet_features(structures, SPECIES, SETTINGS, triplets).blocks[0, -1][2, 0, 7]
            + message_passing_features(structures, SPECIES, SETTINGS, max_lambda=1).blocks[1, 1][1, 2, 30]
        )

    gradient = assert_gradient_matches_finite_differences(feature, methanol.positions)
    assert gradient.abs().max() > 1e-3 * feature(methanol.positions).abs()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(batch, contractions):
    on_gpu = new_families(batch.to("cuda"), contractions)
    for name, blocks in new_families(batch, contractions).items():
        for key, block in blocks.items():
            assert on_gpu[name][key].device.type == "cuda"
            assert_close(on_gpu[name][key].cpu(), block)


def test_bad_orders_and_triplets_are_refused(batch):
    with pytest.raises(ValueError, match="correlation order must be 1 .. 3"):
        atom_centered_features(batch, SPECIES, SETTINGS, max_lambda=1, correlation_order=4)
    with pytest.raises(ValueError, match="pair correlation order"):
        pair_features(batch, SPECIES, SETTINGS, torch.tensor([[0, 0, 1]]), max_lambda=1, correlation_order=3)
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        triplet_features(batch, SPECIES, SETTINGS, torch.tensor([[0, 0, 1]]))


@pytest.mark.parametrize("shape", [(300, 40), (30, 80), (2000, 600), (300, 900)])
def test_contraction_keeps_the_leading_singular_directions(shape):
    """The kept directions are orthonormal and keep as much of the block's variance as its
    leading right singular vectors; tall blocks (through the Gram matrix) and wide ones (through
    the SVD) keep exactly those vectors, blocks of which few directions are kept (randomized)
    keep the variance to 1e-10 on a slowly decaying spectrum."""
    generator = torch.Generator().manual_seed(0)
    decay = torch.logspace(0, -3, shape[1], dtype=torch.float64)
    matrix = torch.randn(*shape, generator=generator, dtype=torch.float64) * decay
    kept = ChannelContraction.fit({(0, 1): matrix[:, None, :]}, n_channels=10).projections[0, 1]
    leading = torch.linalg.svd(matrix, full_matrices=False).Vh[:10].T
    assert_close(kept.T @ kept, torch.eye(10, dtype=torch.float64), rtol=1e-12)
    assert_close((matrix @ kept).pow(2).sum(), (matrix @ leading).pow(2).sum())
    if 40 > min(shape):
        assert_close(kept @ kept.T, leading @ leading.T)
