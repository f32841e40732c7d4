"""Block metadata values: the block-type enum, the placement law, the (lambda, sigma) key."""

import pytest

from nhamil.blocks import MINUS, ON_SITE, PLUS, BlockType, Equivariance, PairKind
from nhamil.blocks.keys import placements


def test_pair_kinds_restore_from_plain_ints_and_know_their_group():
    kind = PairKind(**PairKind(MINUS, 1, 1).to_dict())
    assert kind.block_type is BlockType.MINUS and type(kind.to_dict()["block_type"]) is int
    assert kind.group == PairKind(PLUS, 1, 1) and PairKind(ON_SITE, 8, 8).group == PairKind(ON_SITE, 8, 8)


def test_only_same_element_pairs_mix_their_atoms():
    assert (BlockType.PLUS.mixing_sign, BlockType.MINUS.mixing_sign) == (1, -1)
    with pytest.raises(ValueError, match="HETERO"):
        _ = BlockType.HETERO.mixing_sign


@pytest.mark.parametrize(
    ("block_type", "same_shell", "count"),
    [
        (BlockType.ON_SITE, True, 1),
        (BlockType.ON_SITE, False, 2),
        (BlockType.HETERO, False, 2),
        (BlockType.PLUS, True, 2),
        (BlockType.PLUS, False, 4),
        (BlockType.MINUS, False, 4),
    ],
)
def test_every_matrix_element_of_a_block_is_placed_once(block_type, same_shell, count):
    """The placements are distinct, and a same-element block's squared factors add to one per
    pair of atoms, so (H_ij +- H_ji)/sqrt(2) is undone exactly."""
    law = placements(block_type, same_shell)
    assert len(law) == count == len({(p.transposed, p.swap_atoms) for p in law})
    if block_type in (BlockType.PLUS, BlockType.MINUS) and not same_shell:
        assert [p.factor < 0 for p in law].count(True) == (2 if block_type is BlockType.MINUS else 0)


def test_sigma_and_parity_convert_in_one_place():
    assert Equivariance(1, 1).parity == -1 and Equivariance(2, -1).parity == -1
    assert Equivariance.from_parity(1, -1) == (1, 1) and {(0, 1): "x"}[Equivariance(0, 1)] == "x"
