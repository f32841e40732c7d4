"""AO matrix <-> coupled blocks: exact round trip, Wigner law per block, permutation law, and the
precomputed assembly from head outputs against the block-by-block reference."""

import numpy as np
import pytest
import torch

from nhamil.blocks import MINUS, PLUS, MatrixLayout, blocks_to_matrices, matrix_to_blocks
from nhamil.blocks.assembly import assemble, element_destinations, element_transform, group_of, layout_groups
from nhamil.orbitals import AtomicBasis, basis_wigner, irrep_wigner, random_rotation

MOLECULES = [[8, 1, 1], [6, 6, 8, 1, 1, 1, 1, 1, 1], [1, 7, 1, 1], [7, 6, 1]]


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
    for original, restored in zip(matrices, back, strict=True):
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
    rotated = [
        basis_wigner(basis, z, rotation) @ m @ basis_wigner(basis, z, rotation).T
        for m, z in zip(matrices, MOLECULES, strict=True)
    ]
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
    order = np.r_[offsets[0] : offsets[1], offsets[2] : offsets[3], offsets[1] : offsets[2]]  # swap the two H
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


def _group_values(blocks, layout):
    """{group: (n, E)} from the blocks, heads = keys grouped by (kind, lambda, sigma)."""
    heads = {}
    for key in sorted(blocks):
        heads.setdefault((key.kind, key.equivariant), []).append(key)
    values = {}
    for group in layout_groups(layout):
        outputs = [keys for (kind, _), keys in heads.items() if group_of(kind) == group]
        stacked = [torch.stack([blocks[k].values for k in keys], dim=-1).flatten(1) for keys in outputs]
        values[group] = torch.cat(stacked, dim=1) @ element_transform(layout.basis, group, outputs)
    return values


def test_destinations_cover_every_element_once(basis):
    layout = MatrixLayout.from_numbers(basis, MOLECULES)
    destinations = torch.cat(
        [element_destinations(layout, group, samples).reshape(-1) for group, samples in layout_groups(layout).items()]
    )
    assert torch.equal(destinations.sort().values, torch.arange(int((layout.n_ao**2).sum())))


def test_assembly_restores_the_matrices_exactly(basis):
    generator = torch.Generator().manual_seed(3)
    matrices = [_random_symmetric(basis.n_ao(z), generator) for z in MOLECULES]
    layout = MatrixLayout.from_numbers(basis, MOLECULES)
    restored = assemble(_group_values(matrix_to_blocks(matrices, layout), layout), layout)
    for original, back in zip(matrices, restored, strict=True):
        torch.testing.assert_close(back, original, atol=1e-13, rtol=0)


def test_assembly_equals_block_by_block_reference_with_missing_blocks(basis):
    """Blocks the heads do not predict count as zero in both."""
    generator = torch.Generator().manual_seed(4)
    layout = MatrixLayout.from_numbers(basis, MOLECULES[:2])
    blocks = matrix_to_blocks([_random_symmetric(basis.n_ao(z), generator) for z in MOLECULES[:2]], layout)
    kept = {key: block for key, block in blocks.items() if key.o3_lambda != 1}
    expected = blocks_to_matrices(kept, layout)
    values = _group_values(
        {k: b if k in kept else type(b)(b.samples, torch.zeros_like(b.values)) for k, b in blocks.items()}, layout
    )
    for reference, fast in zip(expected, assemble(values, layout), strict=True):
        torch.testing.assert_close(fast, reference, atol=1e-13, rtol=0)


def test_missing_group_is_named(basis):
    layout = MatrixLayout.from_numbers(basis, [[8, 1, 1]])
    with pytest.raises(ValueError, match="groups"):
        assemble({group: torch.zeros(len(s), 1) for group, s in list(layout_groups(layout).items())[1:]}, layout)
