"""The N-center featurizer: which features feed which kind of Hamiltonian block.

On-site blocks (i, i) get the atom-centred |rho_i^1> .. |rho_i^nu> (and |rho_i^[1<-1]> with
message passing); pair blocks (i, j) get |rho_ij^0> .. |rho_ij^nu> (and |rho_ij^(1,1)> with
both centres), adapted to the permutation behaviour of their block type: (f_ij + f_ji)/sqrt(2)
for + kinds, (f_ij - f_ji)/sqrt(2) for - kinds (:func:`symmetrize`), [f_ij, f_ji] for pairs of
different elements (:func:`concatenate_directions`), the functions that
:func:`symmetrized_pair_features` and :func:`ordered_pair_features` use.

Law: each (lambda, sigma) block X transforms as the Hamiltonian block it feeds,
X(R x) = D_lambda(R) X(x) (times sigma for improper R); under a permutation of the atoms the
samples follow the atoms, + features unchanged and - features changing sign when i and j swap.
"""

from __future__ import annotations

from collections.abc import Sequence

import ase
import numpy as np
import torch

from ..blocks.keys import HETERO, MINUS, ON_SITE, PLUS, Equivariance, PairKind
from ..structures import Structures
from .container import EquivariantFeatures
from .contraction import ChannelContraction
from .correlations import density_correlations, fit_contractions
from .density import density_expansion
from .families import atom_samples, both_directions, concatenate_directions, select_rows, symmetrize
from .manybody import message_passing_features
from .settings import FeatureSettings

#: Structures whose features are computed together when features are built for many of them
#: (their intermediates, several times the size of the features, are freed before the next chunk).
CHUNK = 16


class NCenterFeaturizer:
    """Features of atom pairs of given kinds, for a model that knows ``species`` (atomic numbers)
    and predicts blocks up to ``max_lambda``.

    ``fit`` fits the channel contractions (PCA, ``settings.contraction_channels``) on training
    structures; ``compute`` gives features of any structures; ``state``/``from_state`` save and
    restore it. A sample's features depend on its own molecule only, never on the batch.
    """

    def __init__(
        self,
        settings: FeatureSettings,
        species: Sequence[int],
        max_lambda: int,
        contractions: dict[int, ChannelContraction] | None = None,
    ):
        self.settings = settings
        self.species = tuple(sorted(int(z) for z in species))
        self.max_lambda = max_lambda
        self.contractions = contractions or {}

    def fit(self, structures: Structures) -> NCenterFeaturizer:
        """PCA of the atom-centred correlations up to the highest order any block uses (pair
        features of order nu use the on-site ones of order nu, at lambda + max_angular)."""
        settings = self.settings
        order = max(settings.onsite_correlation_order, settings.pair_correlation_order + 1)
        self.contractions = {}
        if settings.contraction_channels is not None and order >= 2:
            self.contractions = fit_contractions(
                structures,
                self.species,
                settings.density,
                max_lambda=self.max_lambda,
                correlation_order=order,
                n_channels=settings.contraction_channels,
            )
        return self

    def compute(
        self, structures: Structures, pairs: dict[PairKind, np.ndarray], density: dict | None = None
    ) -> dict[PairKind, EquivariantFeatures]:
        """Features of the pair kinds of ``pairs`` ({kind: (n, 3) rows (system, i, j)}, as
        :meth:`nhamil.blocks.MatrixLayout.pairs` gives them), samples in the same order; - kinds
        come with their + kinds. The atom densities rho_i are expanded once for all of them, or
        given as ``density`` (:meth:`density` of the same structures: pairs of one molecule
        featurized a chunk at a time share it)."""
        pairs = {kind: torch.as_tensor(samples, device=structures.ptr.device) for kind, samples in pairs.items()}
        rho = self.density(structures) if density is None else density
        onsite_kinds = [kind for kind in pairs if kind.block_type == ON_SITE]
        if self.settings.message_passing:  # messages need every atom's neighbours: all atoms at once
            onsite = self._onsite_features(structures, rho) if onsite_kinds else None
            result = {kind: _select_atoms(onsite, structures, pairs[kind]) for kind in onsite_kinds}
        else:  # only the atoms asked for (a chunk of a large molecule's atoms)
            result = {
                kind: self._atom_correlations(pairs[kind], _atom_rows(rho, structures, pairs[kind]))
                for kind in onsite_kinds
            }
        return {**result, **self._pair_features(structures, pairs, rho)}

    def density(self, structures: Structures) -> dict[int, torch.Tensor]:
        """The atom densities rho_i of ``structures`` (:func:`density_expansion`: l -> (n_atoms,
        2 l + 1, channels)), linear in the number of atoms (sparse neighbour lists)."""
        return density_expansion(structures, self.species, self.settings.density)

    def compute_in_chunks(
        self, frames: Sequence[ase.Atoms], pairs: dict[PairKind, np.ndarray], device: torch.device | str
    ) -> dict[PairKind, EquivariantFeatures]:
        """:meth:`compute` over many ``frames`` (positions in Å), ``CHUNK`` frames at a time,
        written into blocks allocated once at their final size: the peak memory is about the
        features themselves, not their intermediates."""
        blocks: dict[PairKind, dict[Equivariance, torch.Tensor]] = {}
        filled = dict.fromkeys(pairs, 0)
        for start in range(0, len(frames), CHUNK):
            chunk = frames[start : start + CHUNK]
            part = {kind: chunk_samples(samples, start, start + len(chunk)) for kind, samples in pairs.items()}
            for kind, features in self.compute(Structures.from_atoms(chunk, device=device), part).items():
                rows = slice(filled[kind], filled[kind] + len(features.samples))
                for key, block in features.blocks.items():
                    if key not in blocks.setdefault(kind, {}):
                        blocks[kind][key] = block.new_empty(len(pairs[kind]), *block.shape[1:])
                    blocks[kind][key][rows] = block
                filled[kind] = rows.stop
        return {kind: EquivariantFeatures(torch.as_tensor(pairs[kind], device=device), blocks[kind]) for kind in blocks}

    def _pair_features(
        self, structures: Structures, pairs: dict[PairKind, torch.Tensor], rho: dict
    ) -> dict[PairKind, EquivariantFeatures]:
        """Permutation-adapted features of every pair kind, from one pass over all pairs in both
        directions. The pass runs to ``max_lambda`` whatever kinds are present, so a pair's
        features never depend on the other molecules of the batch."""
        kinds = [kind for kind in pairs if kind.block_type in (PLUS, HETERO)]
        if not kinds:
            return {}
        samples = torch.cat([pairs[kind] for kind in kinds])
        forward, backward = both_directions(
            structures,
            self.species,
            self.settings.density,
            samples,
            max_lambda=self.max_lambda,
            density=rho,
            correlation_order=self.settings.pair_correlation_order,
            both_centres=self.settings.both_centres,
            contractions=self.contractions,
        )
        result, start = {}, 0
        for kind in kinds:
            rows = slice(start, start + len(pairs[kind]))
            start = rows.stop
            ahead, back = _rows(forward, rows), _rows(backward, rows)
            if kind.block_type == HETERO:
                result[kind] = concatenate_directions(ahead, back)
            else:
                result[kind], result[PairKind(MINUS, kind.first_atom_type, kind.second_atom_type)] = symmetrize(
                    ahead, back
                )
        return result

    def _onsite_features(self, structures: Structures, rho: dict) -> EquivariantFeatures:
        """|rho_i^1> .. |rho_i^nu> (and |rho_i^[1<-1]> with message passing) of every atom, from
        the atom densities ``rho`` (:func:`density_expansion`) of ``structures``."""
        settings, lam = self.settings, self.max_lambda
        features = self._atom_correlations(atom_samples(structures), rho)
        if settings.message_passing:
            features = features.concatenate(
                message_passing_features(structures, self.species, settings.density, max_lambda=lam, density=rho)
            )
        return features

    def _atom_correlations(self, samples: torch.Tensor, rho: dict) -> EquivariantFeatures:
        """|rho_i^1> .. |rho_i^nu> of the atoms whose densities are the rows of ``rho``, samples
        ``samples`` (one row each): every order is a function of the atom's own density alone."""
        return EquivariantFeatures(samples, self.onsite_blocks(rho, self.max_lambda))

    def onsite_blocks(self, rho: dict, max_lambda: int) -> dict[Equivariance, torch.Tensor]:
        """(lam, sigma) -> (n, 2 lam + 1, q) blocks |rho_i^1> .. |rho_i^nu>, orders concatenated
        in that order, for lam <= ``max_lambda``, of the atoms whose densities are the rows of
        ``rho`` (a block does not depend on how far lambda goes). nu = 2 keeps every channel
        unless ``contract_onsite_nu2``; nu = 3 is built on the contracted nu = 2 and contracted
        itself. Law: each block turns with the Wigner matrix of its (lam, sigma)."""
        parts = [density_correlations(rho, order=1, max_lambda=max_lambda)]
        for order in range(2, self.settings.onsite_correlation_order + 1):
            contracted = order > 2 or self.settings.contract_onsite_nu2
            contractions = self.contractions if contracted else None
            parts.append(density_correlations(rho, order=order, max_lambda=max_lambda, contractions=contractions))
        keys = sorted(set().union(*parts))
        return {key: torch.cat([part[key] for part in parts if key in part], dim=-1) for key in keys}

    def to(self, device: torch.device | str) -> NCenterFeaturizer:
        """Move the contractions to ``device`` (in place; returns the featurizer)."""
        self.contractions = {order: contraction.to(device) for order, contraction in self.contractions.items()}
        return self

    def state(self) -> dict:
        """Plain data (tensors, ints, strings) that :meth:`from_state` restores."""
        return {
            "settings": self.settings.to_dict(),
            "species": list(self.species),
            "max_lambda": self.max_lambda,
            "contractions": {str(order): c.state() for order, c in self.contractions.items()},
        }

    @classmethod
    def from_state(cls, state: dict) -> NCenterFeaturizer:
        contractions = {int(order): ChannelContraction.from_state(c) for order, c in state["contractions"].items()}
        return cls(FeatureSettings.from_dict(state["settings"]), state["species"], state["max_lambda"], contractions)


def head_inputs(
    features: dict[PairKind, EquivariantFeatures], kind: PairKind, equivariance: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(block (n, 2 lambda + 1, q), invariants (n, 1, q0)) that a head of ``kind`` and
    (lambda, sigma) ``equivariance`` maps. The invariants must not change when the two atoms of a
    pair swap: the - kinds therefore use the invariants of the + features, since their own flip
    sign with the swap and would make a lambda-SOAP kernel (zeta even) blind to the flip that the
    - blocks must follow."""
    return _block(features[kind], equivariance, kind), _block(features[kind.group], (0, 1), kind.group)


def _block(features: EquivariantFeatures, equivariance: tuple[int, int], kind: PairKind) -> torch.Tensor:
    if equivariance not in features.blocks:
        raise ValueError(
            f"no features with (lambda, sigma) = {tuple(equivariance)} for atom pairs {kind}: "
            "raise max_angular or the correlation order"
        )
    return features.blocks[equivariance]


def chunk_samples(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The (system, i, j) rows of systems start .. stop - 1, systems renumbered from 0."""
    chosen = samples[(samples[:, 0] >= start) & (samples[:, 0] < stop)]
    return chosen - np.array([start, 0, 0])


def _rows(features: EquivariantFeatures, rows: slice) -> EquivariantFeatures:
    return EquivariantFeatures(features.samples[rows], select_rows(features.blocks, rows))


def _atom_rows(rho: dict, structures: Structures, samples: torch.Tensor) -> dict:
    """The densities ``rho`` of the atoms of on-site samples (system, i, i)."""
    return select_rows(rho, structures.ptr[samples[:, 0]] + samples[:, 1])


def _select_atoms(features: EquivariantFeatures, structures: Structures, samples: torch.Tensor) -> EquivariantFeatures:
    """Rows of atom-centred features for on-site samples (system, i, i)."""
    rows = structures.ptr[samples[:, 0]] + samples[:, 1]
    return EquivariantFeatures(samples, select_rows(features.blocks, rows))
