"""The Hamiltonian model: N-center features -> one regression head per block key -> AO matrix.

Symmetry law: for a structure x, a proper or improper rotation R and a permutation P of its atoms,
``predict(P R x) = P_ao D F(x) D^T P_ao^T`` with D = basis_wigner(basis, numbers, R), exactly
(to float64 round-off), because every block is a linear, mu-shared function of features of the
same (lambda, sigma) and the same permutation behaviour, and a baseline, if any, is a PySCF
Fock matrix that obeys the same law, as does the self-consistent Hartree term, if any
(:mod:`nhamil.reference.hartree`).
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import ase
import ase.data
import numpy as np
import scipy.spatial
import torch
from tqdm.auto import tqdm

from .atomic import atomic_path
from .blocks import HETERO, ON_SITE, PLUS, Block, BlockKey, MatrixLayout, PairKind, ShellPair, matrix_to_blocks
from .blocks.assembly import element_destinations, element_transform, group_of, layout_groups
from .distributed import Shard
from .domain import DomainReport, TrainingDomain, warn_out_of_domain
from .errors import DataFileError, InputError
from .features import EquivariantFeatures, FeatureSettings, NCenterFeaturizer, head_inputs
from .features.ncenter import chunk_samples
from .heads import (
    HeadFit,
    HeadSettings,
    KernelFit,
    KernelSettings,
    RidgeSettings,
    fit_from_state,
    fit_head,
    fit_state,
    predict_head,
    settings_from_dict,
    settings_to_dict,
)
from .heads.kernel import NystromMap
from .heads.ridge import fold_of_each_sample
from .heads.streaming import ChunkInputs, RidgeSums, StreamSettings, streamed_nystrom_maps
from .orbitals import AtomicBasis, Shell
from .reference.baseline import Baseline, BaselineMatrices, check_baseline
from .reference.hartree import HartreeSettings, HartreeTerm
from .structures import Structures, check_geometries
from .targets import Target

#: 2: the target is a :class:`nhamil.targets.Target` (kind, level of theory, projection), not a name.
CHECKPOINT_FORMAT = 2
#: Atoms or atom pairs of one group whose features are built and mapped to matrix elements at
#: once in :meth:`HamiltonianModel.predict`: with the default features in def2-SVP a pair's
#: features and their intermediates take 3-4 MB in float64, so a chunk about 1 GB
#: (benchmarks/results/prediction_memory.md).
PAIRS_PER_CHUNK = 256


class HamiltonianModel:
    """Predicts symmetric AO matrices written in ``basis`` (Hartree) from structures.

    ``target`` says what the matrices are (:class:`nhamil.targets.Target`: kind, level of theory,
    projection; a bare name such as "saph" means :meth:`Target.named`, RHF in ``basis``);
    ``basis`` must be the target's model basis. ``species`` are the elements the model knows, as
    atomic numbers. ``baseline`` (one of :data:`nhamil.reference.baseline.BASELINES`, full Fock
    targets only): the heads learn the difference to this cheap PySCF Fock matrix (Löwdin-
    orthogonalized for an orthogonal target), which ``predict`` adds back. ``hartree`` (full Fock
    targets with a baseline): the heads learn what the Hartree potential J[P_ref - P_minao] of
    the reference density leaves too, and ``predict`` solves F = baseline + heads +
    J[P(F) - P_minao] self-consistently with these settings (:mod:`nhamil.reference.hartree`):
    the Coulomb potential of charge moved between atoms, which no local feature sees.
    ``domain``: the interatomic distances of the training structures (set by ``fit``; None for
    an unfitted model), against which ``predict`` warns of extrapolation. ``onsite_head``: the
    head of the on-site blocks (None: ``head``, which the pair blocks always use), e.g. a sparse
    kernel on-site, where samples are few and features wide, beside ridge pairs. ``pair_cutoff`` (Å,
    None: every pair): atom pairs farther apart are neither fitted nor featurized, and their
    blocks are exactly zero, so a molecule's pairs, features and time grow linearly with its
    atoms (pairs beyond the density cutoff have all-zero pair features anyway).
    """

    def __init__(
        self,
        basis: AtomicBasis,
        species: Sequence[int],
        *,
        target: Target | str,
        features: FeatureSettings | None = None,
        head: HeadSettings | None = None,
        onsite_head: HeadSettings | None = None,
        baseline: str | None = None,
        pair_cutoff: float | None = None,
        hartree: HartreeSettings | None = None,
    ):
        if pair_cutoff is not None and not pair_cutoff > 0:
            raise InputError(f"pair_cutoff={pair_cutoff} Å must be > 0 (or None for every atom pair)")
        self.pair_cutoff = None if pair_cutoff is None else float(pair_cutoff)
        self.basis = basis
        self.species = tuple(sorted(int(z) for z in species))
        self.target = target if isinstance(target, Target) else Target.named(target, basis.name)
        self.baseline = baseline
        self.features = features or FeatureSettings()
        self.featurizer = NCenterFeaturizer(self.features, self.species, self.max_lambda)
        self.head = head or RidgeSettings()
        self.onsite_head = onsite_head
        self.heads: dict[tuple[PairKind, tuple[int, int]], tuple[list[BlockKey], HeadFit]] = {}
        self._transforms: dict[PairKind, torch.Tensor] = {}
        self.domain: TrainingDomain | None = None
        basis.check_elements(self.species)
        _check_target_basis(self.target, basis)
        if baseline is not None:
            _check_baseline_target(baseline, self.target)
        self.hartree = hartree
        if hartree is not None:
            check_hartree_target(baseline, self.target)

    @property
    def max_lambda(self) -> int:
        return 2 * self.basis.max_l

    def head_of(self, kind: PairKind) -> HeadSettings:
        """The head settings of ``kind``'s blocks: ``onsite_head`` on-site where set, else ``head``."""
        if kind.block_type == ON_SITE and self.onsite_head is not None:
            return self.onsite_head
        return self.head

    def fit(
        self,
        frames: Sequence[ase.Atoms],
        matrices: Sequence[torch.Tensor],
        device: torch.device | str = "cpu",
        progress: bool = True,
        streaming: StreamSettings | None = None,
        shard: Shard | None = None,
        baselines: BaselineMatrices | None = None,
    ) -> HamiltonianModel:
        """Fit one head per (pair kind, lambda, sigma) on ``matrices`` (Hartree, one per
        frame), in float64 on ``device``, with a progress bar over the heads. Features are built
        for one group of kinds at a time (all on-site kinds, or the kinds of one element pair), a
        chunk of frames at a time (:meth:`NCenterFeaturizer.compute_in_chunks`), so the peak memory
        is about the features of the largest group, not of all groups or of every intermediate.

        ``streaming`` (ridge or sparse kernel heads): never hold a group's features; accumulate each head's ridge
        sums a chunk of frames at a time (:mod:`nhamil.heads.streaming`), so the peak memory is one
        chunk's features and the sums, whatever the number of frames; the fit is the in-memory one
        to round-off. ``shard`` (:mod:`nhamil.distributed`): this process's part of a fit on several
        processes, each given all ``frames`` and ``matrices``: chunks are dealt to ranks, the sums
        all-reduced, the channel contractions fitted on rank 0 and broadcast, and every rank ends
        with the same model. ``baselines``: the model's baseline of ``frames`` (:meth:`baselines`, or
        :func:`nhamil.reference.baseline_cache.cached_baselines`), computed here if None."""
        shard = shard or Shard()
        streaming = streaming or (StreamSettings() if shard.world_size > 1 else None)
        if streaming is not None:
            for settings in (self.head, self.onsite_head):
                if settings is not None:
                    streaming.check(settings)
        check_geometries(frames)
        layout = self._layout(frames)
        matrices = [torch.as_tensor(m, dtype=torch.float64, device=device) for m in matrices]
        blocks = matrix_to_blocks(self._minus_baseline(frames, matrices, baselines, progress), layout)
        self._fit_contractions(frames, device, streaming, shard)
        self.heads, self._transforms = {}, {}
        self.domain = TrainingDomain.from_frames(frames, self.features.density.cutoff)
        if streaming is not None:
            return self._fit_streamed(frames, blocks, layout.pairs(), device, streaming, shard, progress)
        pairs = layout.pairs()
        n_heads = sum(len(_keys_by_symmetry(blocks, kind)) for kind in pairs)
        with tqdm(total=n_heads, desc="regression heads", unit="head", disable=not progress) as bar:
            for group in _feature_groups(pairs):
                features = self.featurizer.compute_in_chunks(frames, group, device)
                for kind in features:
                    for equivariant, keys in _keys_by_symmetry(blocks, kind).items():
                        targets = torch.stack([blocks[key].values for key in keys], dim=-1)
                        self.heads[(kind, equivariant)] = (keys, self._fit_head(features, kind, equivariant, targets))
                        bar.update()
        return self

    def _fit_contractions(
        self, frames: Sequence[ase.Atoms], device: torch.device | str, streaming: StreamSettings | None, shard: Shard
    ) -> None:
        """Fit the featurizer's channel contractions on the training frames, or, streaming, on the
        first ``streaming.contraction_frames`` of them; on rank 0 only, broadcast to the others."""
        limit = None if streaming is None else streaming.contraction_frames
        chosen = frames[:limit] if limit is not None else frames
        if shard.writes:
            self.featurizer.fit(Structures.from_atoms(chosen, device=device))
        contractions = shard.from_writer({order: c.to("cpu") for order, c in self.featurizer.contractions.items()})
        self.featurizer.contractions = contractions
        self.featurizer.to(device)

    def _fit_streamed(
        self,
        frames: Sequence[ase.Atoms],
        blocks: dict[BlockKey, Block],
        pairs: dict[PairKind, np.ndarray],
        device: torch.device | str,
        streaming: StreamSettings,
        shard: Shard,
        progress: bool,
    ) -> HamiltonianModel:
        """Ridge heads from sums accumulated over this rank's chunks of frames, all-reduced."""
        groups = _feature_groups(pairs)
        chunks = shard.chunks(len(frames), streaming.chunk_frames)
        plans = [self._stream_passes(frames, group, blocks, streaming, device) for group in groups]
        reads = [3 if isinstance(self._group_head(group), KernelSettings) else 1 for group in groups]
        total = sum(len(passes) * n for passes, n in zip(plans, reads, strict=True)) * len(chunks)
        with tqdm(total=total, desc="streamed fit", unit="chunk", disable=not progress) as bar:
            for group, passes in zip(groups, plans, strict=True):
                settings = self._group_head(group)
                folds = {kind: fold_of_each_sample(torch.as_tensor(s[:, 0]), settings) for kind, s in group.items()}
                for heads in passes:
                    maps = self._streamed_maps(frames, chunks, group, heads, shard, device, bar)
                    sums: dict[tuple[PairKind, tuple[int, int]], RidgeSums] = {}
                    for chunk in chunks:
                        self._accumulate(frames, chunk, group, heads, blocks, folds, sums, maps, device)
                        bar.update()
                    self._solve_streamed(heads, sums, folds, maps, shard, device)
        return self

    def _group_head(self, group: dict[PairKind, np.ndarray]) -> HeadSettings:
        """The head settings of a feature group (:func:`_feature_groups`: all on-site kinds, or
        the kinds of one element pair, so one setting serves the whole group)."""
        return self.head_of(next(iter(group)))

    def _streamed_maps(
        self,
        frames: Sequence[ase.Atoms],
        chunks: list[range],
        group: dict[PairKind, np.ndarray],
        heads: dict[tuple[PairKind, tuple[int, int]], list[BlockKey]],
        shard: Shard,
        device: torch.device | str,
        bar: tqdm,
    ) -> dict[tuple[PairKind, tuple[int, int]], NystromMap]:
        """The Nyström map of each of ``heads`` for a sparse kernel head (two more passes over
        this rank's chunks, :func:`nhamil.heads.streaming.streamed_nystrom_maps`, counted on
        ``bar``); none for ridge."""
        settings = self._group_head(group)
        if not isinstance(settings, KernelSettings):
            return {}

        def read_chunks() -> Iterator[ChunkInputs]:
            for chunk in chunks:
                yield self._chunk_inputs(frames, chunk, group, heads, device)
                bar.update()

        return streamed_nystrom_maps(read_chunks, settings, shard.gathered, device)

    def _stream_passes(
        self,
        frames: Sequence[ase.Atoms],
        group: dict[PairKind, np.ndarray],
        blocks: dict[BlockKey, Block],
        streaming: StreamSettings,
        device: torch.device | str,
    ) -> list[dict[tuple[PairKind, tuple[int, int]], list[BlockKey]]]:
        """The heads of ``group`` (head -> its block keys) split into passes over the frames whose
        ridge sums each fit in ``streaming.sums_memory_gb`` (one pass if None; a head larger than
        the budget gets a pass of its own), in the order of the group's heads, the same on every
        rank. Feature widths come from featurizing the first frame of each kind."""
        heads = {
            (kind, equivariant): keys for kind in group for equivariant, keys in _keys_by_symmetry(blocks, kind).items()
        }
        if streaming.sums_memory_gb is None:
            return [heads]
        widths = self._head_widths(frames, group, heads, device)
        budget, passes, used = streaming.sums_memory_gb * 1e9, [{}], 0.0
        for head, keys in heads.items():
            size = RidgeSums.nbytes(self.head_of(head[0]).n_folds, self._sums_width(head, widths[head]), len(keys))
            if passes[-1] and used + size > budget:
                passes.append({})
                used = 0.0
            passes[-1][head] = keys
            used += size
        return passes

    def _sums_width(self, head: tuple[PairKind, tuple[int, int]], n_features: int) -> int:
        """Columns of a head's ridge sums: its features, or at most n_active (2 lambda + 1)
        Nyström features for a sparse kernel."""
        settings = self.head_of(head[0])
        if isinstance(settings, KernelSettings):
            return settings.n_active * (2 * head[1][0] + 1)
        return n_features

    def _head_widths(
        self,
        frames: Sequence[ase.Atoms],
        group: dict[PairKind, np.ndarray],
        heads: dict[tuple[PairKind, tuple[int, int]], list[BlockKey]],
        device: torch.device | str,
    ) -> dict[tuple[PairKind, tuple[int, int]], int]:
        """Number of features q of each head of ``group``, from the first frame holding each kind."""
        widths: dict[tuple[PairKind, tuple[int, int]], int] = {}
        for frame in sorted({int(samples[0, 0]) for samples in group.values() if len(samples)}):
            part = {kind: chunk_samples(samples, frame, frame + 1) for kind, samples in group.items()}
            part = {kind: samples for kind, samples in part.items() if len(samples)}
            features = self.featurizer.compute(Structures.from_atoms(frames[frame : frame + 1], device=device), part)
            for kind, equivariant in heads:
                if kind in part:
                    widths.setdefault((kind, equivariant), head_inputs(features, kind, equivariant)[0].shape[-1])
        return widths

    def _solve_streamed(
        self,
        heads: dict[tuple[PairKind, tuple[int, int]], list[BlockKey]],
        sums: dict[tuple[PairKind, tuple[int, int]], RidgeSums],
        folds: dict[PairKind, torch.Tensor],
        maps: dict[tuple[PairKind, tuple[int, int]], NystromMap],
        shard: Shard,
        device: torch.device | str,
    ) -> None:
        """Reduce the sums of ``heads`` over the ranks (collective, in order; ``sums`` is consumed,
        each head's released once reduced), then solve each head on its owner rank
        (:meth:`Shard.owners`, balanced by the K + 1 eigendecompositions of q x q that a head's
        alpha search costs) with no collective in between, so that the ranks solve at the same
        time; then share the solutions so every rank ends with them (on the Nyström features of
        ``maps``, for the heads it holds)."""
        n_folds = {kind: int(fold.max()) + 1 for kind, fold in folds.items()}
        for head, keys in heads.items():
            sums[head] = _reduced(sums, head, len(keys), n_folds[head[0]], shard, device)
        owners = shard.owners([(n_folds[head[0]] + 1) * float(sums[head].gram.shape[-1]) ** 3 for head in heads])
        reduced = {}
        for head, owner in zip(heads, owners, strict=True):
            mine = sums.pop(head).reduced(intercept=_has_intercept(*head), all_reduce=shard.all_reduce)
            if owner == shard.rank:
                reduced[head] = mine
        solved = {head: reduced.pop(head).solve(_ridge_settings(self.head_of(head[0]))) for head in list(reduced)}
        for (head, keys), owner in zip(heads.items(), owners, strict=True):
            fit = shard.from_owner(solved.get(head), owner)
            self.heads[head] = (keys, KernelFit(maps[head], fit) if head in maps else fit)

    def _accumulate(
        self,
        frames: Sequence[ase.Atoms],
        chunk: range,
        group: dict[PairKind, np.ndarray],
        heads: dict[tuple[PairKind, tuple[int, int]], list[BlockKey]],
        blocks: dict[BlockKey, Block],
        folds: dict[PairKind, torch.Tensor],
        sums: dict[tuple[PairKind, tuple[int, int]], RidgeSums],
        maps: dict[tuple[PairKind, tuple[int, int]], NystromMap],
        device: torch.device | str,
    ) -> None:
        """Add the samples of the frames ``chunk`` of every head of ``group`` to ``sums`` (their
        Nyström features, for the heads of ``maps``)."""
        for head, (block, invariants, rows) in self._chunk_inputs(frames, chunk, group, heads, device).items():
            keys = heads[head]
            inputs = maps[head](block, invariants) if head in maps else block
            targets = torch.stack([blocks[key].values[rows.to(blocks[key].values.device)] for key in keys], dim=-1)
            if head not in sums:
                sums[head] = RidgeSums.zeros(int(folds[head[0]].max()) + 1, inputs.shape[-1], len(keys), device)
            sums[head].add(inputs, targets, folds[head[0]][rows])

    def _chunk_inputs(
        self,
        frames: Sequence[ase.Atoms],
        chunk: range,
        group: dict[PairKind, np.ndarray],
        heads: dict[tuple[PairKind, tuple[int, int]], list[BlockKey]],
        device: torch.device | str,
    ) -> ChunkInputs:
        """Features, invariants and sample rows (among all of the kind's samples) of each of
        ``heads`` in the frames ``chunk`` (heads without samples there are left out)."""
        part = {kind: chunk_samples(samples, chunk.start, chunk.stop) for kind, samples in group.items()}
        part = {kind: samples for kind, samples in part.items() if len(samples)}
        if not part:
            return {}
        features = self.featurizer.compute(Structures.from_atoms(frames[chunk.start : chunk.stop], device=device), part)
        inputs: ChunkInputs = {}
        for kind, equivariant in heads:
            if kind in part:
                frame_of_sample = torch.as_tensor(group[kind][:, 0])
                rows = torch.nonzero((frame_of_sample >= chunk.start) & (frame_of_sample < chunk.stop)).flatten()
                inputs[(kind, equivariant)] = (*head_inputs(features, kind, equivariant), rows)
        return inputs

    def _fit_head(
        self,
        features: dict[PairKind, EquivariantFeatures],
        kind: PairKind,
        equivariant: tuple[int, int],
        targets: torch.Tensor,
    ) -> HeadFit:
        """One head: targets (n, 2 lambda + 1, t) of ``kind``'s blocks with that (lambda, sigma)."""
        block, invariants = head_inputs(features, kind, equivariant)
        return fit_head(
            self.head_of(kind),
            block,
            invariants,
            targets,
            features[kind].samples[:, 0],
            intercept=_has_intercept(kind, equivariant),
            equivariance=equivariant,
        )

    def predict(
        self,
        frames: Sequence[ase.Atoms],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        batch_size: int = 8,
        check_domain: bool = True,
        baselines: BaselineMatrices | None = None,
        pair_chunk: int = PAIRS_PER_CHUNK,
        progress: bool = False,
    ) -> list[torch.Tensor]:
        """Predicted matrices, one (n_ao, n_ao) tensor per frame, Hartree, on ``device``, computed
        ``batch_size`` frames at a time (large batches of big feature blocks are memory-bound on
        a CPU; a GPU wants hundreds) and, within a batch, ``pair_chunk`` atoms or atom pairs at a time
        (the peak memory is the matrices plus one chunk's features, whatever the molecule's
        size; the result does not depend on it). Weights not on ``device`` are copied there for
        every batch: call :meth:`to` first. The inputs are checked once (:meth:`check_inputs`).
        The baseline, for a model with one, is added: ``baselines`` (:meth:`baselines` of the
        same frames) if given, else PySCF computes it here. A model with a Hartree term then solves
        its loop per frame on the CPU (about 14 J builds; ``HartreeNotConverged`` names a frame
        whose loop fails). With ``check_domain``, an :class:`~nhamil.domain.OutOfDomainWarning`
        names the frames outside the training domain (:meth:`domain_reports`). ``progress``: a
        progress bar over the frames."""
        self._check_predictable(pair_chunk)
        self.check_inputs(frames)
        if check_domain:
            warn_out_of_domain(self.domain_reports(frames), frames)
        matrices = self.predictions(frames, device, dtype, batch_size, baselines, pair_chunk, checked=True)
        return list(tqdm(matrices, total=len(frames), desc="predictions", unit="structure", disable=not progress))

    def predictions(
        self,
        frames: Sequence[ase.Atoms],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        batch_size: int = 8,
        baselines: BaselineMatrices | None = None,
        pair_chunk: int = PAIRS_PER_CHUNK,
        checked: bool = False,
    ) -> Iterator[torch.Tensor]:
        """:meth:`predict` one matrix at a time, a batch computed when the first of it is asked
        for (a caller that moves each off the device holds one batch there); no domain warning.
        ``checked``: the caller has run :meth:`check_inputs` on ``frames`` already."""
        self._check_predictable(pair_chunk)
        if not checked:
            self.check_inputs(frames)
        baselines = self._checked_baselines(frames, baselines)
        hartree = self.hartree_term()
        for start in range(0, len(frames), batch_size):
            batch = frames[start : start + batch_size]
            for offset, matrix in enumerate(self._predict_batch(batch, device, dtype, pair_chunk)):
                index = start + offset
                base = None if baselines is None else baselines.matrices[index]
                matrix = matrix if base is None else matrix + torch.as_tensor(base).to(matrix)
                if hartree is not None:
                    fixed = matrix.cpu().double().numpy()
                    solved = hartree.solve(fixed, frames[index], baselines.overlaps[index], label=str(index))
                    matrix = torch.as_tensor(solved.fock).to(matrix)
                yield matrix

    def _check_predictable(self, pair_chunk: int) -> None:
        if not self.heads:
            raise RuntimeError("the model is not fitted")
        if pair_chunk < 1:
            raise InputError(f"pair_chunk={pair_chunk} must be at least 1 atom pair")

    def baseline_stage(self) -> Baseline | None:
        """The model's baseline as a stage of its own (None for a model without one)."""
        return (
            None
            if self.baseline is None
            else Baseline(self.baseline, self.basis, self.target.orthogonal, self.target.scf)
        )

    def baselines(self, frames: Sequence[ase.Atoms], progress: bool = False) -> BaselineMatrices | None:
        """The baseline matrices (target's form) and AO overlaps of ``frames`` (PySCF, CPU), to hand
        to :meth:`predict` and to whatever else needs the overlaps; None for a model without one."""
        stage = self.baseline_stage()
        return None if stage is None else stage.compute(frames, progress)

    def _checked_baselines(
        self, frames: Sequence[ase.Atoms], baselines: BaselineMatrices | None, progress: bool = False
    ) -> BaselineMatrices | None:
        """``baselines`` after checking they are this model's, one of the right size per frame; or
        the model's own (computed here), or None for a model without a baseline."""
        if baselines is None:
            return self.baselines(frames, progress)
        if self.baseline is None or (baselines.name, baselines.orthogonal) != (self.baseline, self.target.orthogonal):
            form = "orthogonal" if baselines.orthogonal else "AO"
            raise InputError(
                f"baselines of {baselines.name!r} ({form}) do not belong to a model with baseline {self.baseline!r} "
                f"and target {self.target.name!r}: pass the model's own, model.baselines(frames)"
            )
        if len(baselines) != len(frames):
            raise InputError(f"{len(baselines)} baseline matrices for {len(frames)} frames: give one per frame")
        sizes = self.basis.atom_offsets
        for index, (atoms, matrix) in enumerate(zip(frames, baselines.matrices, strict=True)):
            n_ao = int(sizes(atoms.numbers)[-1])
            if np.shape(matrix) != (n_ao, n_ao):
                raise InputError(
                    f"baseline matrix {index} is {np.shape(matrix)}, but structure {index} "
                    f"({atoms.get_chemical_formula()}) has {n_ao} AOs: baselines are not of these frames"
                )
        return baselines

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
        self.featurizer.to(device)
        return self

    def _minus_baseline(
        self,
        frames: Sequence[ase.Atoms],
        matrices: list[torch.Tensor],
        baselines: BaselineMatrices | None,
        progress: bool,
    ) -> list[torch.Tensor]:
        """The part of ``matrices`` the heads learn: all of it, or what the baseline (``baselines``,
        checked to be the model's, or computed here) leaves."""
        if self.baseline is None:
            return matrices
        checked = self._checked_baselines(frames, baselines, progress)
        bases = checked.matrices
        if self.hartree is not None:
            bases = self._plus_reference_hartree(frames, matrices, checked, progress)
        return [matrix - torch.as_tensor(base).to(matrix) for matrix, base in zip(matrices, bases, strict=True)]

    def _plus_reference_hartree(
        self, frames: Sequence[ase.Atoms], matrices: list[torch.Tensor], baselines: BaselineMatrices, progress: bool
    ) -> list[np.ndarray]:
        """Each frame's baseline plus J[P_ref - P_minao] of its reference matrix (one J build)."""
        term = self.hartree_term()
        steps = zip(frames, matrices, baselines.matrices, baselines.overlaps, strict=True)
        return [
            base + term.of_reference(atoms, matrix.cpu().numpy(), overlap)
            for atoms, matrix, base, overlap in tqdm(
                list(steps), desc="Hartree terms", unit="structure", disable=not progress
            )
        ]

    def hartree_term(self) -> HartreeTerm | None:
        """The model's self-consistent Hartree term (None for a model without one)."""
        if self.hartree is None:
            return None
        return HartreeTerm(self.basis, self.target.scf, self.target.orthogonal, self.hartree)

    def check_inputs(self, frames: Sequence[ase.Atoms], scf_basis: str | None = None) -> None:
        """Raise ``InputError`` before any work if ``frames`` hold an impossible geometry, an
        element or a kind of atom pair the model was not trained on (naming it and the
        structure), or if ``scf_basis`` (the basis of the data the predictions are meant for) is
        not the basis the model's target has in it (naming both)."""
        check_geometries(frames)
        self.check_atom_pairs(frames)
        expected = None if scf_basis is None else self.target.kind.model_basis_name(scf_basis)
        if expected is not None and expected != self.basis.name:
            raise InputError(
                f"the model was trained in basis {self.basis.name!r} but the data are in {scf_basis!r} "
                f"(a {self.target.name!r} model of it would be {expected!r})"
            )

    def check_atom_pairs(self, frames: Sequence[ase.Atoms]) -> None:
        """Raise ``ValueError`` naming the first structure of ``frames`` with an element the model
        does not know (:meth:`check_elements`) or a kind of atom pair it has no heads for (an O-O
        pair for a model trained on water; with a ``pair_cutoff``, of the pairs within it), and
        those kinds. Linear in the atoms: no layout is built."""
        self.check_elements(frames)
        trained = {group_of(kind) for kind, _ in self.heads}
        for index, atoms in enumerate(frames):
            unseen = _frame_groups(atoms, self.pair_cutoff) - trained
            if unseen:
                names = ", ".join(_pair_name(group) for group in sorted(unseen))
                raise ValueError(
                    f"structure {index} ({atoms.get_chemical_formula()}) has atom pairs the model "
                    f"was not trained on: {names}"
                )

    def _predict_batch(
        self, frames: Sequence[ase.Atoms], device: torch.device | str, dtype: torch.dtype, pair_chunk: int
    ) -> list[torch.Tensor]:
        """The learned matrices of checked ``frames``: one layout and one density expansion for
        the batch; the atoms (on-site) and the pairs of each group ``pair_chunk`` at a time, each
        chunk's matrix elements written into the matrices before the next chunk is featurized."""
        layout = MatrixLayout.from_numbers(self.basis, [a.numbers for a in frames], self._pair_lists(frames))
        structures = Structures.from_atoms(frames, dtype=dtype, device=device)
        density = self.featurizer.density(structures)
        flat = torch.zeros(int((layout.n_ao**2).sum()), dtype=dtype, device=device)
        for group, samples in layout_groups(layout).items():
            for start in range(0, len(samples), pair_chunk):
                chunk = samples[start : start + pair_chunk]
                features = self.featurizer.compute(structures, {group: chunk}, density)  # - kinds come with +
                self._write_group(flat, layout, group, chunk, features)
        sizes = (layout.n_ao**2).tolist()
        return [part.reshape(n, n) for part, n in zip(torch.split(flat, sizes), layout.n_ao.tolist(), strict=True)]

    def _write_group(
        self,
        flat: torch.Tensor,
        layout: MatrixLayout,
        group: PairKind,
        samples: np.ndarray,
        features: dict[PairKind, EquivariantFeatures],
    ) -> None:
        """Write the matrix elements of ``samples`` (n, 3) of ``group`` (:func:`assemble`'s flat
        vector of all matrices of ``layout``), predicted from their ``features``."""
        destinations = element_destinations(layout, group, samples).reshape(-1).to(flat.device)
        flat[destinations] = self._predict_group(group, features).reshape(-1).to(flat)

    def _predict_group(self, group: PairKind, features: dict[PairKind, EquivariantFeatures]) -> torch.Tensor:
        """(n, E) matrix elements owned by the samples of one group of pair kinds (see
        :mod:`nhamil.blocks.assembly`): every head's outputs, mapped by the group's transform."""
        outputs = [
            predict_head(fit, *head_inputs(features, kind, equivariant)).flatten(1)
            for (kind, equivariant), (_, fit) in self.heads.items()
            if group_of(kind) == group
        ]
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
                raise ValueError(
                    f"structure {index} ({atoms.get_chemical_formula()}) holds element(s) {symbols} "
                    f"(Z={unknown}) that the model was not trained on (Z={list(self.species)})"
                )

    def _layout(self, frames: Sequence[ase.Atoms]) -> MatrixLayout:
        """The layout of ``frames`` that fits and predictions share: every atom pair, or those
        within the ``pair_cutoff``."""
        self.check_elements(frames)
        return MatrixLayout.from_numbers(self.basis, [a.numbers for a in frames], self._pair_lists(frames))

    def _pair_lists(self, frames: Sequence[ase.Atoms]) -> list[np.ndarray] | None:
        """Per frame the (n, 2) pairs i < j within the ``pair_cutoff`` (None: every pair)."""
        return None if self.pair_cutoff is None else [pairs_within(a.positions, self.pair_cutoff) for a in frames]

    def state_dict(self) -> dict:
        """Plain data (ints, floats, strings, tensors) that :meth:`from_state_dict` restores."""
        return {
            "format": CHECKPOINT_FORMAT,
            "basis": self.basis.to_dict(),
            "species": list(self.species),
            "target": self.target.to_dict(),
            "baseline": self.baseline,
            "hartree": None if self.hartree is None else self.hartree.to_dict(),
            "pair_cutoff": self.pair_cutoff,
            "features": self.features.to_dict(),
            "contractions": self.featurizer.state()["contractions"],
            "head": settings_to_dict(self.head),
            "onsite_head": None if self.onsite_head is None else settings_to_dict(self.onsite_head),
            "heads": [
                {
                    "kind": kind.to_dict(),
                    "equivariant": list(eq),
                    "keys": [_key_to_list(k) for k in keys],
                    "fit": fit_state(fit),
                }
                for (kind, eq), (keys, fit) in self.heads.items()
            ],
            "domain": None if self.domain is None else self.domain.to_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> HamiltonianModel:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(
                f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT} (written by "
                "another nhamil version, without the target's level of theory): train the model again"
            )
        features = FeatureSettings.from_dict(state["features"])
        model = cls(
            AtomicBasis.from_dict(state["basis"]),
            state["species"],
            target=Target.from_dict(state["target"]),
            features=features,
            head=settings_from_dict(state["head"]),
            onsite_head=settings_from_dict(state["onsite_head"]) if state.get("onsite_head") else None,
            baseline=state.get("baseline"),
            pair_cutoff=state.get("pair_cutoff"),
            hartree=HartreeSettings(**state["hartree"]) if state.get("hartree") else None,
        )
        model.featurizer = NCenterFeaturizer.from_state(
            {**model.featurizer.state(), "contractions": state.get("contractions", {})}
        )
        for head in state["heads"]:
            kind = PairKind(**head["kind"])
            keys = [_key_from_list(kind, k) for k in head["keys"]]
            model.heads[(kind, tuple(head["equivariant"]))] = (keys, fit_from_state(head["fit"]))
        model.domain = TrainingDomain.from_dict(state["domain"]) if state.get("domain") else None
        return model

    def save(self, path: str | Path) -> None:
        """Write the checkpoint atomically (temporary file, then rename). It is serialized in
        memory and written with plain file I/O, so a full disk raises ``OSError(ENOSPC)`` naming
        ``path`` (torch's own writer reports only a file position)."""
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        with atomic_path(path) as temporary:
            try:
                temporary.write_bytes(buffer.getbuffer())
            except OSError as err:
                raise OSError(err.errno, os.strerror(err.errno or errno.EIO), str(path)) from err

    @classmethod
    def load(cls, path: str | Path) -> HamiltonianModel:
        """Load a checkpoint written by :meth:`save` (plain data only: ``weights_only``), after
        checking every member's CRC: ``DataFileError`` naming ``path`` for a damaged or truncated
        file, a file that is not an nhamil checkpoint, or one of another format."""
        state = _read_checkpoint(Path(path))
        try:
            return cls.from_state_dict(state)
        except (InputError, KeyError, TypeError) as err:
            raise DataFileError(f"checkpoint {path}: {err}") from err


def _read_checkpoint(path: Path) -> dict:
    """The state dict in the torch archive ``path``, whose CRCs are verified first."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFileError(f"cannot read checkpoint {path}: {err.strerror or err}") from err
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise DataFileError(
            f"{path} is not an nhamil checkpoint (not a complete torch archive: {err}); "
            "give the model.pt of a training run"
        ) from err
    try:
        member = archive.testzip()
        problem = None if member is None else f"member {member} fails its CRC check"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        problem = str(err)
    if problem is not None:
        raise DataFileError(f"checkpoint {path} is damaged ({problem}); restore it from a copy or train again")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
        raise DataFileError(f"{path} is not an nhamil checkpoint (torch cannot read it as plain data)") from err
    if not isinstance(state, dict) or "format" not in state:
        raise DataFileError(f"{path} is not an nhamil checkpoint (it holds a {type(state).__name__}, not a model)")
    return state


def _ridge_settings(settings: HeadSettings) -> HeadSettings:
    """The ridge settings that solve a head's sums: a sparse kernel's ridge on its Nyström features."""
    return settings.ridge() if isinstance(settings, KernelSettings) else settings


def _check_target_basis(target: Target, basis: AtomicBasis) -> None:
    """The model's basis must be the one its target's matrices are written in."""
    if target.model_basis_name != basis.name.lower():
        raise InputError(
            f"a {target.name!r} model at basis {target.scf.basis!r} has matrices in basis "
            f"{target.model_basis_name!r}, not {basis.name!r}"
        )


def _check_baseline_target(baseline: str, target: Target) -> None:
    """A baseline is a full AO Fock matrix: only full Fock targets can be learned relative to it."""
    check_baseline(baseline)
    if not target.supports_baseline:
        raise InputError(
            f"baseline {baseline!r} is a full Fock matrix; it applies to targets 'fock_orthogonal' "
            f"and 'fock', not {target.name!r}"
        )


def check_hartree_target(baseline: str | None, target: Target) -> None:
    """Raise ``InputError`` unless a Hartree term fits: it moves the density of a full Fock
    ``target``, relative to a ``baseline``."""
    target.check_full_fock("the Hartree term")
    if baseline is None:
        raise InputError("the Hartree term needs a baseline ('minao' or 'sap'), the part of F it is added to")


def pairs_within(positions: np.ndarray, cutoff: float) -> np.ndarray:
    """(n, 2) int64 pairs i < j of atoms at ``positions`` (n_atoms, 3), Å, at most ``cutoff`` Å
    apart, sorted; from a k-d tree, so memory and time grow with the pairs found, not n_atoms^2.
    Law: rotations and translations keep the set; a permutation of the atoms relabels it."""
    found = scipy.spatial.cKDTree(np.asarray(positions, dtype=np.float64)).query_pairs(cutoff, output_type="ndarray")
    found = np.sort(found.astype(np.int64).reshape(-1, 2), axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def _frame_groups(atoms: ase.Atoms, pair_cutoff: float | None) -> set[PairKind]:
    """The groups of pair kinds (:func:`group_of`) that predicting ``atoms`` needs heads for: the
    on-site kind of each element, and the + or different-element kind of each element pair that
    has an atom pair (within ``pair_cutoff``, Å, if given)."""
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    elements, counts = np.unique(numbers, return_counts=True)
    if pair_cutoff is None:
        present = [(a, b) for k, a in enumerate(elements) for b in elements[k:] if a != b or counts[k] > 1]
    else:
        present = np.unique(np.sort(numbers[pairs_within(atoms.positions, pair_cutoff)], axis=1), axis=0)
    groups = {PairKind(ON_SITE, int(z), int(z)) for z in elements}
    return groups | {PairKind(PLUS if a == b else HETERO, int(a), int(b)) for a, b in present}


def _reduced(
    sums: dict[tuple[PairKind, tuple[int, int]], RidgeSums],
    head: tuple[PairKind, tuple[int, int]],
    n_targets: int,
    n_folds: int,
    shard: Shard,
    device: torch.device | str,
) -> RidgeSums:
    """This rank's sums of ``head`` (zeros of the width the other ranks found where it saw none of its samples)."""
    width = shard.largest([sums[head].gram.shape[-1] if head in sums else 0], device)[0]
    return sums.get(head) or RidgeSums.zeros(n_folds, width, n_targets, device)


def _pair_name(group: PairKind) -> str:
    """ "O on-site", "H-H", "C-O"."""
    first, second = (ase.data.chemical_symbols[z] for z in (group.first_atom_type, group.second_atom_type))
    return f"{first} on-site" if group.block_type == ON_SITE else f"{first}-{second}"


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


def _has_intercept(kind: PairKind, equivariant: tuple[int, int]) -> bool:
    """Only invariant on-site blocks may have a constant term."""
    return kind.block_type == ON_SITE and equivariant == (0, 1)


def _key_to_list(key: BlockKey) -> list[int]:
    sp = key.shell_pair
    return [sp.first_shell.n, sp.first_shell.l, sp.second_shell.n, sp.second_shell.l, key.o3_lambda]


def _key_from_list(kind: PairKind, values: list[int]) -> BlockKey:
    n1, l1, n2, l2, lam = values
    return BlockKey(ShellPair(kind, Shell(n1, l1), Shell(n2, l2)), lam)
