"""The two routes to the real spherical harmonics (monomial table, e3nn module) agree."""

import pytest
import torch
from torch.testing import assert_close

from nhamil.features.harmonics import E3NN_FROM, e3nn_harmonics, packed_real_harmonics, table_harmonics
from nhamil.orbitals import irrep_wigner, random_rotation


def _unit_vectors(n: int, seed: int) -> torch.Tensor:
    vectors = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return vectors / vectors.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("max_l", [1, 2, 6])
def test_table_and_e3nn_give_the_same_values_and_gradients(max_l):
    unit = _unit_vectors(200, seed=1).requires_grad_()
    weights = torch.randn((max_l + 1) ** 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    table, e3nn = table_harmonics(max_l, unit), e3nn_harmonics(max_l, unit)
    assert_close(table, e3nn, rtol=1e-13, atol=1e-14)
    gradients = [torch.autograd.grad((values * weights).sum(), unit)[0] for values in (table, e3nn)]
    assert_close(*gradients, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("n_vectors", [E3NN_FROM - 1, E3NN_FROM])
def test_both_sides_of_the_switch_rotate_with_the_wigner_matrices(n_vectors):
    """Y_l(R v) = D_l(R) Y_l(v) for proper and improper R, below and at the switch to e3nn."""
    vectors = 2.5 * _unit_vectors(n_vectors, seed=3)
    for improper in (False, True):
        rotation = random_rotation(torch.Generator().manual_seed(4), improper=improper)
        rotated = packed_real_harmonics(3, vectors @ rotation.T)
        wigner = torch.block_diag(*[irrep_wigner(l, (-1) ** l, rotation) for l in range(4)])
        assert_close(rotated, packed_real_harmonics(3, vectors) @ wigner.T, rtol=1e-12, atol=1e-13)
