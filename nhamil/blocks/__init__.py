"""AO matrices <-> coupled equivariant blocks (atom pair x shell pair x (lambda, sigma))."""

from .coupling import couple, uncouple
from .decompose import MatrixLayout, blocks_to_matrices, matrix_to_blocks
from .keys import BLOCK_TYPES, HETERO, MINUS, ON_SITE, PLUS, Block, BlockKey, PairKind, ShellPair

__all__ = [
    "BLOCK_TYPES", "HETERO", "MINUS", "ON_SITE", "PLUS", "Block", "BlockKey", "MatrixLayout", "PairKind",
    "ShellPair", "blocks_to_matrices", "couple", "matrix_to_blocks", "uncouple",
]
