"""AO matrices <-> coupled equivariant blocks (atom pair x shell pair x (lambda, sigma))."""

from .coupling import couple, uncouple
from .decompose import MatrixLayout, blocks_to_matrices, matrix_to_blocks
from .keys import HETERO, MINUS, ON_SITE, PLUS, Block, BlockKey, BlockType, Equivariance, PairKind, ShellPair

__all__ = [
    "HETERO",
    "MINUS",
    "ON_SITE",
    "PLUS",
    "Block",
    "BlockKey",
    "BlockType",
    "Equivariance",
    "MatrixLayout",
    "PairKind",
    "ShellPair",
    "blocks_to_matrices",
    "couple",
    "matrix_to_blocks",
    "uncouple",
]
