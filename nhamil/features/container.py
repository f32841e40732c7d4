"""The container that every feature family returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..blocks.keys import Equivariance

#: A feature block's key, (o3_lambda, o3_sigma); plain tuples compare equal to it.
Key = Equivariance


@dataclass(frozen=True)
class EquivariantFeatures:
    """Equivariant features of n samples, one block per (o3_lambda, o3_sigma).

    samples: (n, 3) long rows (system, first_atom, second_atom), atom indices local to the system
    (first_atom == second_atom for atom-centred features), or (n, 4) rows (system, atom,
    first_neighbor, second_neighbor) for triplet features. blocks: (lam, sigma) ->
    (n, 2 lam + 1, n_features). Law: for a proper or improper rotation R of the positions,
    block(R x) = irrep_wigner(lam, sigma * (-1)**lam, R) @ block(x) on the mu axis.
    """

    samples: torch.Tensor
    blocks: dict[Key, torch.Tensor]

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[1] not in (3, 4):
            raise ValueError(f"samples must be (n, 3) or (n, 4), got shape {tuple(self.samples.shape)}")
        for (lam, sigma), block in self.blocks.items():
            if block.ndim != 3 or block.shape[:2] != (len(self.samples), 2 * lam + 1) or sigma not in (-1, 1):
                raise ValueError(
                    f"block {(lam, sigma)} has shape {tuple(block.shape)}, "
                    f"expected ({len(self.samples)}, {2 * lam + 1}, n_features)"
                )

    @property
    def n_features(self) -> dict[Key, int]:
        """Number of features of each block."""
        return {key: block.shape[-1] for key, block in self.blocks.items()}

    def concatenate(self, other: EquivariantFeatures) -> EquivariantFeatures:
        """Features of ``self`` then of ``other`` along the feature axis, key by key (a key that
        only one of them has keeps that one's features). Both must have the same samples."""
        if not torch.equal(self.samples, other.samples):
            raise ValueError("can only concatenate features of the same samples")
        keys = sorted(set(self.blocks) | set(other.blocks))
        return EquivariantFeatures(
            self.samples,
            {key: torch.cat([f.blocks[key] for f in (self, other) if key in f.blocks], dim=-1) for key in keys},
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> EquivariantFeatures:
        """Move to ``device``; ``dtype`` changes the blocks' floating type only."""
        return EquivariantFeatures(
            self.samples.to(device), {key: block.to(device=device, dtype=dtype) for key, block in self.blocks.items()}
        )
