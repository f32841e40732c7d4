"""AO matrix <-> coupled blocks: exact round trip, Wigner law per block, permutation law."""

import numpy as np
import pytest
import torch

from nhamil.blocks import MINUS, PLUS, MatrixLayout, blocks_to_matrices, matrix_to_blocks
from nhamil.orbitals import AtomicBasis, basis_wigner, irrep_wigner, random_rotation

MOLECULES = [[8, 1, 1], [6, 6, 8, 1, 1, 1, 1, 1, 1], [1, 7, 1, 1]]


@pytest.fixture(scope="module")
def basis():
    return AtomicBasis.from_pyscf("def2-svp", [1, 6, 7, 8])


def _random_symmetric(n, generator):
    a = torch.randn(n, n, dtype=torch.float64, generator=generator)
    return a + a.T


def test_round_trip_is_exact(basis):
    generator = torch.Generator().manual_seed(0)
    matrices = [_random_symmetric(basis.n_ao(z), generator) for z in MOLECULES]
    layout = MatrixLayout.from_numbers(basis, MOLECULES)
    back = blocks_to_matrices(matrix_to_blocks(matrices, layout), layout)
    for original, restored in zip(matrices, back):
        torch.testing.assert_close(restored, original, atol=1e-12, rtol=0)


def test_same_shell_channels_that_vanish_are_not_stored(basis):
    layout = MatrixLayout.from_numbers(basis, [[8, 1, 1]])
    blocks = matrix_to_blocks([_random_symmetric(basis.n_ao([8, 1, 1]), torch.Generator())], layout)
    for key in blocks:
        sp = key.shell_pair
        if sp.first_shell == sp.second_shell and key.kind.block_type != 2:
            parity = (sp.first_shell.l * 2 + key.o3_lambda) % 2
            assert parity == (1 if key.kind.block_type == MINUS else 0), str(key)


@pytest.mark.parametrize("improper", [False, True])
def test_each_block_transforms_with_its_lambda_and_sigma(basis, improper):
    generator = torch.Generator().manual_seed(1)
    rotation = random_rotation(generator, improper=improper)
    matrices = [_random_symmetric(basis.n_ao(z), generator) for z in MOLECULES]
    rotated = [basis_wigner(basis, z, rotation) @ m @ basis_wigner(basis, z, rotation).T
               for m, z in zip(matrices, MOLECULES)]
    layout = MatrixLayout.from_numbers(basis, MOLECULES)
    original, turned = matrix_to_blocks(matrices, layout), matrix_to_blocks(rotated, layout)
    sigmas = set()
    for key, block in original.items():
        wigner = irrep_wigner(key.o3_lambda, key.o3_sigma * (-1) ** key.o3_lambda, rotation)
        torch.testing.assert_close(turned[key].values, block.values @ wigner.T, atol=1e-12, rtol=0)
        sigmas.add(key.o3_sigma)
    assert sigmas == {1, -1}


def test_swapping_two_same_element_atoms_flips_only_minus_blocks(basis):
    numbers = [8, 1, 1]
    matrix = _random_symmetric(basis.n_ao(numbers), torch.Generator().manual_seed(2))
    offsets = basis.atom_offsets(numbers)
    order = np.r_[offsets[0]:offsets[1], offsets[2]:offsets[3], offsets[1]:offsets[2]]  # swap the two H
    swapped = matrix[order][:, order]
    layout = MatrixLayout.from_numbers(basis, [numbers])
    before, after = matrix_to_blocks([matrix], layout), matrix_to_blocks([swapped], layout)
    flipped = 0
    for key, block in before.items():
        if key.kind.block_type in (PLUS, MINUS):
            torch.testing.assert_close(after[key].values, key.kind.block_type * block.values, atol=1e-14, rtol=0)
            flipped += key.kind.block_type == MINUS and bool(block.values.abs().max() > 1e-3)
    assert flipped > 0


def test_shape_mismatch_names_the_basis(basis):
    layout = MatrixLayout.from_numbers(basis, [[8, 1, 1]])
    with pytest.raises(ValueError, match="def2-svp"):
        matrix_to_blocks([torch.zeros(7, 7, dtype=torch.float64)], layout)
