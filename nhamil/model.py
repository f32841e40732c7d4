"""The Hamiltonian model: N-center features -> one regression head per block key -> AO matrix.

Symmetry law: for a structure x, a proper or improper rotation R and a permutation P of its atoms,
``predict(P R x) = P_ao D F(x) D^T P_ao^T`` with D = basis_wigner(basis, numbers, R), exactly
(to float64 round-off), because every block is a linear, mu-shared function of features of the
same (lambda, sigma) and the same permutation behaviour, and a baseline, if any, is a PySCF
Fock matrix that obeys the same law.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ase
import ase.data
import numpy as np
import torch
from tqdm.auto import tqdm

from .atomic import atomic_path
from .blocks import HETERO, MINUS, ON_SITE, PLUS, Block, BlockKey, MatrixLayout, PairKind, ShellPair
from .blocks import matrix_to_blocks
from .blocks.assembly import assemble, element_transform, group_of, layout_groups
from .domain import DomainReport, TrainingDomain, warn_out_of_domain
from .features import (ChannelContraction, DensitySettings, EquivariantFeatures, both_directions,
                       density_correlations, density_expansion, fit_contractions, message_passing_features,
                       select_rows, symmetrize)
from .features.families import atom_samples
from .heads import (HeadFit, HeadSettings, RidgeSettings, fit_from_state, fit_head, fit_state, predict_head,
                    settings_from_dict, settings_to_dict)
from .orbitals import AtomicBasis, Shell
from .reference.baseline import check_baseline, orthogonal_baselines
from .structures import Structures

CHECKPOINT_FORMAT = 1
#: Training frames whose features are computed together (their intermediates, several times
#: the size of the features, are freed before the next chunk).
FIT_CHUNK = 16


@dataclass(frozen=True, kw_only=True)
class FeatureSettings:
    """Which N-center features feed the heads.

    density: the atom-density expansion. onsite_correlation_order: on-site blocks use
    |rho_i^1> .. |rho_i^nu> (2, the authors' choice, or 1 or 3); message_passing: also the
    message-passing features |rho_i^[1<-1]>. Pair blocks use |rho_ij^0> .. |rho_ij^nu>,
    nu = pair_correlation_order (1 or 2), and with both_centres also |rho_ij^(1,1)>,
    permutation-adapted per block type. contraction_channels: keep this many principal
    components of every (lambda, sigma) block of the atom-centred correlations of order >= 2,
    fitted on the training structures and stored with the model; None keeps every channel.
    """

    density: DensitySettings = field(default_factory=DensitySettings)
    onsite_correlation_order: int = 2
    message_passing: bool = False
    pair_correlation_order: int = 1
    both_centres: bool = False
    contraction_channels: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSettings:
        """From :meth:`to_dict`'s plain data (or a Hydra ``features`` group); missing keys keep
        their defaults."""
        return cls(**{**data, "density": DensitySettings(**data["density"])})


class HamiltonianModel:
    """Predicts symmetric AO matrices written in ``basis`` (Hartree) from structures.

    ``target`` names what the matrices are (e.g. "saph", "fock_orthogonal"); ``species`` are the
    elements the model knows, as atomic numbers. ``baseline`` (one of
    :data:`nhamil.reference.baseline.BASELINES`, ``fock_orthogonal`` targets only): the heads
    learn the difference to this cheap PySCF Fock matrix, which ``predict`` adds back.
    ``domain``: the interatomic distances of the training structures (set by ``fit``; None for
    an unfitted model or an older checkpoint), against which ``predict`` warns of extrapolation.
    """

    def __init__(self, basis: AtomicBasis, species: Sequence[int], *, target: str,
                 features: FeatureSettings | None = None, head: HeadSettings | None = None,
                 baseline: str | None = None):
        self.basis = basis
        self.species = tuple(sorted(int(z) for z in species))
        self.target = target
        self.baseline = baseline
        self.features = features or FeatureSettings()
        self.contractions: dict[int, ChannelContraction] = {}
        self.head = head or RidgeSettings()
        self.heads: dict[tuple[PairKind, tuple[int, int]], tuple[list[BlockKey], HeadFit]] = {}
        self._transforms: dict[PairKind, torch.Tensor] = {}
        self.domain: TrainingDomain | None = None
        basis.check_elements(self.species)
        if baseline is not None:
            _check_baseline_target(baseline, target)

    @property
    def max_lambda(self) -> int:
        return 2 * self.basis.max_l

    def fit(self, frames: Sequence[ase.Atoms], matrices: Sequence[torch.Tensor],
            device: torch.device | str = "cpu", progress: bool = True) -> HamiltonianModel:
        """Fit one head per (pair kind, lambda, sigma) on ``matrices`` (Hartree, one per
        frame), in float64 on ``device``, with a progress bar over the heads. Features are built
        for one group of kinds at a time (all on-site kinds, or the kinds of one element pair),
        ``FIT_CHUNK`` frames at a time into preallocated blocks, so the peak memory is about the
        features of the largest group, not of all groups or of every intermediate product."""
        layout = self._layout(frames)
        matrices = [torch.as_tensor(m, dtype=torch.float64, device=device) for m in matrices]
        blocks = matrix_to_blocks(self._minus_baseline(frames, matrices, progress), layout)
        structures = Structures.from_atoms(frames, device=device)
        self.contractions = self._fit_contractions(structures)
        self.heads, self._transforms = {}, {}
        self.domain = TrainingDomain.from_frames(frames, self.features.density.cutoff)
        pairs = layout.pairs()
        n_heads = sum(len(_keys_by_symmetry(blocks, kind)) for kind in pairs)
        with tqdm(total=n_heads, desc="regression heads", unit="head", disable=not progress) as bar:
            for group in _feature_groups(pairs):
                features = self._group_features(frames, group, device)
                for kind in features:
                    for equivariant, keys in _keys_by_symmetry(blocks, kind).items():
                        targets = torch.stack([blocks[key].values for key in keys], dim=-1)
                        self.heads[(kind, equivariant)] = (keys, self._fit_head(features, kind, equivariant, targets))
                        bar.update()
        return self

    def _group_features(self, frames: Sequence[ase.Atoms], group: dict[PairKind, np.ndarray],
                        device: torch.device | str) -> dict[PairKind, EquivariantFeatures]:
        """:meth:`_features` of one group of kinds over all ``frames``, computed ``FIT_CHUNK``
        frames at a time (a sample's features depend on its own molecule only) and written into
        blocks allocated once, at their final size."""
        blocks: dict[PairKind, dict[tuple[int, int], torch.Tensor]] = {}
        filled = dict.fromkeys(group, 0)
        for start in range(0, len(frames), FIT_CHUNK):
            chunk = frames[start:start + FIT_CHUNK]
            part = {kind: _chunk_samples(samples, start, start + len(chunk)) for kind, samples in group.items()}
            for kind, features in self._features(Structures.from_atoms(chunk, device=device), part).items():
                rows = slice(filled[kind], filled[kind] + len(features.samples))
                for key, block in features.blocks.items():
                    if key not in blocks.setdefault(kind, {}):
                        blocks[kind][key] = block.new_empty(len(group[kind]), *block.shape[1:])
                    blocks[kind][key][rows] = block
                filled[kind] = rows.stop
        return {kind: EquivariantFeatures(torch.as_tensor(group[kind], device=device), blocks[kind]) for kind in blocks}

    def _fit_head(self, features: dict[PairKind, EquivariantFeatures], kind: PairKind, equivariant: tuple[int, int],
                  targets: torch.Tensor) -> HeadFit:
        """One head: targets (n, 2 lambda + 1, t) of ``kind``'s blocks with that (lambda, sigma)."""
        block, invariants = _feature_block(features[kind], equivariant, kind), _invariants(features, kind)
        return fit_head(self.head, block, invariants, targets, features[kind].samples[:, 0],
                        intercept=_has_intercept(kind, equivariant))

    def predict(self, frames: Sequence[ase.Atoms], device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float64, batch_size: int = 8, check_domain: bool = True
                ) -> list[torch.Tensor]:
        """Predicted matrices, one (n_ao, n_ao) tensor per frame, Hartree, on ``device``, computed
        ``batch_size`` frames at a time (large batches of big feature blocks are memory-bound on
        a CPU; a GPU wants hundreds); the baseline, for a model with one, is added. Weights
        not on ``device`` are copied there for every batch: call :meth:`to` first. With
        ``check_domain``, an :class:`~nhamil.domain.OutOfDomainWarning` names the frames outside
        the training domain (:meth:`domain_reports`)."""
        if not self.heads:
            raise RuntimeError("the model is not fitted")
        self.check_atom_pairs(frames)
        if check_domain:
            warn_out_of_domain(self.domain_reports(frames), frames)
        learned = [matrix for start in range(0, len(frames), batch_size)
                   for matrix in self._predict_batch(frames[start:start + batch_size], device, dtype)]
        if self.baseline is None:
            return learned
        baselines = orthogonal_baselines(self.baseline, frames, self.basis)
        return [matrix + torch.as_tensor(base).to(matrix) for matrix, base in zip(learned, baselines)]

    def domain_reports(self, frames: Sequence[ase.Atoms]) -> list[DomainReport] | None:
        """Per frame: inside the training domain or not, and why (see :mod:`nhamil.domain`);
        None for a model that records no domain (an older checkpoint)."""
        return None if self.domain is None else self.domain.check(frames)

    def to(self, device: torch.device | str) -> HamiltonianModel:
        """Move the fitted heads, their maps to matrix elements and the channel contractions to
        ``device`` (in place; returns the model), so that predictions there copy no weights.
        Predictions do not change: the law ``H(R x) = D H(x) D^T`` holds on every device."""
        self.heads = {key: (keys, fit.to(device)) for key, (keys, fit) in self.heads.items()}
        self._transforms = {group: transform.to(device) for group, transform in self._transforms.items()}
        self.contractions = {order: contraction.to(device) for order, contraction in self.contractions.items()}
        return self

    def _minus_baseline(self, frames: Sequence[ase.Atoms], matrices: list[torch.Tensor],
                        progress: bool) -> list[torch.Tensor]:
        """The part of ``matrices`` the heads learn: all of it, or what the baseline leaves."""
        if self.baseline is None:
            return matrices
        baselines = orthogonal_baselines(self.baseline, frames, self.basis, progress)
        return [matrix - torch.as_tensor(base).to(matrix) for matrix, base in zip(matrices, baselines)]

    def check_atom_pairs(self, frames: Sequence[ase.Atoms]) -> None:
        """Raise ``ValueError`` naming the first structure of ``frames`` with a kind of atom pair
        the model has no heads for (an O-O pair for a model trained on water), and those kinds;
        or, through the layout, an element the model does not know."""
        trained = {group_of(kind) for kind, _ in self.heads}
        unseen = {group: samples for group, samples in layout_groups(self._layout(frames)).items()
                  if group not in trained}
        if unseen:
            index = min(int(samples[0, 0]) for samples in unseen.values())  # samples come in structure order
            names = ", ".join(_pair_name(group) for group, samples in sorted(unseen.items()) if index in samples[:, 0])
            raise ValueError(f"structure {index} ({frames[index].get_chemical_formula()}) has atom pairs the model "
                             f"was not trained on: {names}")

    def _predict_batch(self, frames: Sequence[ase.Atoms], device: torch.device | str,
                       dtype: torch.dtype) -> list[torch.Tensor]:
        layout = self._layout(frames)
        structures = Structures.from_atoms(frames, dtype=dtype, device=device)
        features = self._features(structures, layout.pairs())
        return assemble({group: self._predict_group(group, features)
                         for group in layout_groups(layout)}, layout)

    def _predict_group(self, group: PairKind, features: dict[PairKind, EquivariantFeatures]) -> torch.Tensor:
        """(n, E) matrix elements owned by the samples of one group of pair kinds (see
        :mod:`nhamil.blocks.assembly`): every head's outputs, mapped by the group's transform."""
        outputs = [predict_head(fit, _feature_block(features[kind], equivariant, kind),
                                _invariants(features, kind)).flatten(1)
                   for (kind, equivariant), (_, fit) in self.heads.items() if group_of(kind) == group]
        return torch.cat(outputs, dim=1) @ self._transform(group).to(outputs[0])

    def _transform(self, group: PairKind) -> torch.Tensor:
        """The group's (K, E) map from head outputs to matrix elements, built once per fit."""
        if group not in self._transforms:
            outputs = [keys for (kind, _), (keys, _) in self.heads.items() if group_of(kind) == group]
            self._transforms[group] = element_transform(self.basis, group, outputs)
        return self._transforms[group]

    def check_elements(self, frames: Sequence[ase.Atoms]) -> None:
        """Raise ``ValueError`` naming the first structure of ``frames`` that holds an element the
        model was not trained on, and those elements."""
        for index, atoms in enumerate(frames):
            unknown = sorted(set(atoms.numbers.tolist()) - set(self.species))
            if unknown:
                symbols = [ase.data.chemical_symbols[z] for z in unknown]
                raise ValueError(f"structure {index} ({atoms.get_chemical_formula()}) holds element(s) {symbols} "
                                 f"(Z={unknown}) that the model was not trained on (Z={list(self.species)})")

    def _layout(self, frames: Sequence[ase.Atoms]) -> MatrixLayout:
        self.check_elements(frames)
        return MatrixLayout.from_numbers(self.basis, [a.numbers for a in frames])

    def _features(self, structures: Structures, pairs: dict[PairKind, np.ndarray]) -> dict[PairKind, EquivariantFeatures]:
        """Features of the pair kinds of ``pairs`` (as :meth:`MatrixLayout.pairs` gives them), samples
        in the same order; - kinds come with their + kinds. The atom densities rho_i are expanded
        once for all of them."""
        pairs = {kind: torch.as_tensor(samples, device=structures.ptr.device) for kind, samples in pairs.items()}
        rho = density_expansion(structures, self.species, self.features.density)
        onsite_kinds = [kind for kind in pairs if kind.block_type == ON_SITE]
        onsite = self._onsite_features(structures, rho) if onsite_kinds else None
        result = {kind: _select_atoms(onsite, structures, pairs[kind]) for kind in onsite_kinds}
        return {**result, **self._pair_features(structures, pairs, rho)}

    def _pair_features(self, structures: Structures, pairs: dict[PairKind, torch.Tensor], rho: dict
                       ) -> dict[PairKind, EquivariantFeatures]:
        """Permutation-adapted features of every pair kind, from one pass over all pairs in both
        directions: (f_ij +- f_ji)/sqrt(2) for same-element kinds, [f_ij, f_ji] otherwise. The
        pass runs to the model's max_lambda whatever kinds are present, so a pair's features never
        depend on the other molecules of the batch."""
        kinds = [kind for kind in pairs if kind.block_type in (PLUS, HETERO)]
        if not kinds:
            return {}
        samples = torch.cat([pairs[kind] for kind in kinds])
        forward, backward = both_directions(structures, self.species, self.features.density, samples,
                                            max_lambda=self.max_lambda, density=rho, **self._pair_options())
        result, start = {}, 0
        for kind in kinds:
            rows = slice(start, start + len(pairs[kind]))
            start = rows.stop
            ahead, back = _rows(forward, rows), _rows(backward, rows)
            if kind.block_type == HETERO:
                result[kind] = ahead.concatenate(EquivariantFeatures(ahead.samples, back.blocks))
            else:
                minus = PairKind(MINUS, kind.first_atom_type, kind.second_atom_type)
                result[kind], result[minus] = symmetrize(ahead, back)
        return result

    def _onsite_features(self, structures: Structures, rho: dict) -> EquivariantFeatures:
        """|rho_i^1> .. |rho_i^nu> (and |rho_i^[1<-1]> with message passing) of every atom, from
        the atom densities ``rho`` (:func:`density_expansion`) of ``structures``."""
        density, species, lam = self.features.density, self.species, self.max_lambda
        samples = atom_samples(structures)
        features = EquivariantFeatures(samples, density_correlations(rho, order=1, max_lambda=lam))
        for order in range(2, self.features.onsite_correlation_order + 1):
            features = features.concatenate(EquivariantFeatures(samples, density_correlations(
                rho, order=order, max_lambda=lam, contractions=self.contractions)))
        if self.features.message_passing:
            features = features.concatenate(message_passing_features(structures, species, density, max_lambda=lam,
                                                                     density=rho))
        return features

    def _pair_options(self) -> dict:
        return {"correlation_order": self.features.pair_correlation_order,
                "both_centres": self.features.both_centres, "contractions": self.contractions}

    def _fit_contractions(self, structures: Structures) -> dict[int, ChannelContraction]:
        """PCA of the atom-centred correlations up to the highest order any block uses (pair
        features of order nu use the on-site ones of order nu, at lambda + max_angular)."""
        settings = self.features
        order = max(settings.onsite_correlation_order, settings.pair_correlation_order + 1)
        if settings.contraction_channels is None or order < 2:
            return {}
        return fit_contractions(structures, self.species, settings.density, max_lambda=self.max_lambda,
                                correlation_order=order, n_channels=settings.contraction_channels)

    def state_dict(self) -> dict:
        """Plain data (ints, floats, strings, tensors) that :meth:`from_state_dict` restores."""
        return {
            "format": CHECKPOINT_FORMAT, "basis": self.basis.to_dict(), "species": list(self.species),
            "target": self.target, "baseline": self.baseline, "features": self.features.to_dict(),
            "contractions": {str(order): c.state() for order, c in self.contractions.items()},
            "head": settings_to_dict(self.head),
            "heads": [{"kind": asdict(kind), "equivariant": list(eq), "keys": [_key_to_list(k) for k in keys],
                       "fit": fit_state(fit)} for (kind, eq), (keys, fit) in self.heads.items()],
            "domain": None if self.domain is None else self.domain.to_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> HamiltonianModel:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        features = FeatureSettings.from_dict(state["features"])
        model = cls(AtomicBasis.from_dict(state["basis"]), state["species"], target=state["target"],
                    features=features, head=settings_from_dict(state["head"]), baseline=state.get("baseline"))
        model.contractions = {int(order): ChannelContraction.from_state(c)
                              for order, c in state.get("contractions", {}).items()}
        for head in state["heads"]:
            kind = PairKind(**head["kind"])
            keys = [_key_from_list(kind, k) for k in head["keys"]]
            model.heads[(kind, tuple(head["equivariant"]))] = (keys, fit_from_state(head["fit"]))
        model.domain = TrainingDomain.from_dict(state["domain"]) if state.get("domain") else None
        return model

    def save(self, path: str | Path) -> None:
        """Write the checkpoint atomically (temporary file, then rename)."""
        with atomic_path(path) as temporary:
            torch.save(self.state_dict(), temporary)

    @classmethod
    def load(cls, path: str | Path) -> HamiltonianModel:
        """Load a checkpoint written by :meth:`save` (plain data only: ``weights_only``)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
            raise ValueError(f"cannot read checkpoint {path}: {err}") from err
        return cls.from_state_dict(state)


def _check_baseline_target(baseline: str, target: str) -> None:
    """A baseline is a full AO Fock matrix: only full Fock targets can be learned relative to it."""
    check_baseline(baseline)
    if target != "fock_orthogonal":
        raise ValueError(f"baseline {baseline!r} is a full Fock matrix; it applies to target 'fock_orthogonal', "
                         f"not {target!r}")


def _pair_name(group: PairKind) -> str:
    """"O on-site", "H-H", "C-O"."""
    first, second = (ase.data.chemical_symbols[z] for z in (group.first_atom_type, group.second_atom_type))
    return f"{first} on-site" if group.block_type == ON_SITE else f"{first}-{second}"


def _chunk_samples(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The (system, i, j) rows of systems start .. stop - 1, systems renumbered from 0."""
    chosen = samples[(samples[:, 0] >= start) & (samples[:, 0] < stop)]
    return chosen - np.array([start, 0, 0])


def _feature_groups(pairs: dict[PairKind, np.ndarray]) -> list[dict[PairKind, np.ndarray]]:
    """``pairs`` split into groups whose features are built together: all on-site kinds (one
    pass over the atoms), and the kinds of each element pair (+ and -, or different elements)."""
    groups: dict[tuple[int, ...], dict[PairKind, np.ndarray]] = {}
    for kind, samples in pairs.items():
        key = (ON_SITE,) if kind.block_type == ON_SITE else (kind.first_atom_type, kind.second_atom_type)
        groups.setdefault(key, {})[kind] = samples
    return list(groups.values())


def _keys_by_symmetry(blocks: dict[BlockKey, Block], kind: PairKind) -> dict[tuple[int, int], list[BlockKey]]:
    """Block keys of one pair kind grouped by (lambda, sigma): each group shares its features."""
    grouped: dict[tuple[int, int], list[BlockKey]] = {}
    for key in sorted(blocks):
        if key.kind == kind:
            grouped.setdefault(key.equivariant, []).append(key)
    return grouped


def _feature_block(features: EquivariantFeatures, equivariant: tuple[int, int], kind: PairKind) -> torch.Tensor:
    if equivariant not in features.blocks:
        raise ValueError(f"no features with (lambda, sigma) = {equivariant} for atom pairs {kind}: "
                         "raise max_angular or the correlation order")
    return features.blocks[equivariant]


def _invariants(features: dict[PairKind, EquivariantFeatures], kind: PairKind) -> torch.Tensor:
    """(n, 1, q0) invariant (lambda = 0, sigma = +1) features by which the kernel heads compare
    samples of ``kind``. They must not change when the two atoms of a pair swap: the - blocks of
    same-element pairs therefore use the invariants of the + features, since their own flip sign
    with the swap and would make the lambda-SOAP kernel (zeta even) blind to the flip that
    the - blocks must follow."""
    if kind.block_type == MINUS:
        kind = PairKind(PLUS, kind.first_atom_type, kind.second_atom_type)
    return _feature_block(features[kind], (0, 1), kind)


def _has_intercept(kind: PairKind, equivariant: tuple[int, int]) -> bool:
    """Only invariant on-site blocks may have a constant term."""
    return kind.block_type == ON_SITE and equivariant == (0, 1)


def _rows(features: EquivariantFeatures, rows: slice) -> EquivariantFeatures:
    return EquivariantFeatures(features.samples[rows], select_rows(features.blocks, rows))


def _select_atoms(features: EquivariantFeatures, structures: Structures, samples: torch.Tensor) -> EquivariantFeatures:
    """Rows of atom-centred features for on-site samples (system, i, i)."""
    rows = structures.ptr[samples[:, 0]] + samples[:, 1]
    return EquivariantFeatures(samples, select_rows(features.blocks, rows))


def _key_to_list(key: BlockKey) -> list[int]:
    sp = key.shell_pair
    return [sp.first_shell.n, sp.first_shell.l, sp.second_shell.n, sp.second_shell.l, key.o3_lambda]


def _key_from_list(kind: PairKind, values: list[int]) -> BlockKey:
    n1, l1, n2, l2, lam = values
    return BlockKey(ShellPair(kind, Shell(n1, l1), Shell(n2, l2)), lam)
