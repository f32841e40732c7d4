"""Streamed ridge: the fit of :func:`nhamil.heads.ridge.fit_ridge` from sums accumulated over chunks of samples.

A ridge fit needs the features only through per-fold statistics: the row count n_f, the feature
and target means (q,) and (t,), the products X_f^T X_f (q, q), X_f^T Y_f (q, t) and the target
squares diag(Y_f^T Y_f) (t,) about those means, for each cross-validation fold f (whole
molecules, dealt exactly as ``fit_ridge`` deals them), merged chunk by chunk and, across
processes, shifted to the common mean m and all-reduced. They give the centred Gram matrices

    (X_f - 1 m^T)^T (X_f - 1 m^T) = C_f + n_f (m_f - m)(m_f - m)^T       (C_f about the fold mean m_f)

and so the same scale, the same validation errors and alpha per target, and the same weights as
the in-memory fit, to round-off, in one pass over the features. The solve is primal (q x q),
whatever the number of rows; peak memory is one chunk of features plus n_folds q x q matrices
per head. Where rows are fewer than features, the in-memory fit solves the dual: the two agree
in their predictions on the span of the training features, while weights along directions the
data do not span are round-off divided by alpha (see benchmarks/results/streaming.md).

A sparse kernel head streams on its Nyström features phi (:class:`nhamil.heads.kernel.NystromMap`):
:func:`streamed_nystrom_maps` reads the frames twice before the ridge sums, once for the feature
scale and the unit invariants of every sample (n x q0, small), from which farthest-point sampling
picks the active samples exactly as the in-memory fit does, and once for the features of the
active samples; the ridge sums then accumulate phi (r <= n_active (2 lambda + 1) columns).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..errors import InputError
from .kernel import KernelSettings, NystromMap, farthest_point_sampling, feature_scale, unit_invariants
from .ridge import RidgeFit, RidgeSettings, ridge_coefficients

#: One chunk's inputs of each head: (features (n, 2 lambda + 1, q), invariants (n, 1, q0), rows (n,)
#: the indices of the chunk's samples among all samples of the head, in the in-memory order).
ChunkInputs = dict[Hashable, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _alone(tensors: list[torch.Tensor]) -> None:
    """The all-reduce of a single process: nothing to add."""


@dataclass(frozen=True, kw_only=True)
class StreamSettings:
    """How a streamed fit reads its frames: chunk_frames frames at a time (the peak memory is
    their features); contraction_frames: the channel contractions are fitted on the first this
    many training frames (None: all of them, as the in-memory fit; set it to bound that
    fit's memory as well); sums_memory_gb: the ridge sums held at once (all heads of one feature
    group by default: n_folds q x q matrices per head, 19 GB for ethanol's H-C pairs with
    four-body features) are kept under this many GB by splitting a group's heads into passes
    over the frames, each computing the group's features again (None: one pass)."""

    chunk_frames: int = 16
    contraction_frames: Optional[int] = None
    sums_memory_gb: Optional[float] = None

    def check(self, head: Any) -> None:
        """``InputError`` naming the setting that cannot stream: a head other than ridge or a
        sparse kernel, or a chunk or contraction size below 1."""
        if isinstance(head, KernelSettings) and head.n_active is None:
            raise InputError(
                "a streamed or distributed kernel fit needs a sparse kernel: set head.n_active "
                "(head=sparse_kernel); the full kernel holds every sample at once"
            )
        if not isinstance(head, (RidgeSettings, KernelSettings)):
            raise InputError(
                f"a streamed or distributed fit needs head=ridge or head=sparse_kernel, not {type(head).__name__}: "
                "drop fit.chunk_frames (and run in one process) or choose one of those"
            )
        for name in ("chunk_frames", "contraction_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"fit.{name}={value} must be at least 1 (frames)")
        if self.sums_memory_gb is not None and not self.sums_memory_gb > 0:
            raise InputError(f"fit.sums_memory_gb={self.sums_memory_gb} must be > 0 (GB), or null for one pass")


@dataclass
class RidgeSums:
    """Per-fold statistics of one head, k folds, q features, t targets (float64), kept about the
    running means (Chan, Golub and LeVeque's pairwise update: no cancellation when the features'
    mean dwarfs their spread): counts (k,) rows (samples x mu components); feature_means (k, q);
    target_means (k, t); gram (k, q, q) sum of (x - mean)(x - mean)^T; moment (k, q, t) the
    same with the targets; target_squares (k, t) column sums of (y - mean)^2."""

    counts: torch.Tensor
    feature_means: torch.Tensor
    target_means: torch.Tensor
    gram: torch.Tensor
    moment: torch.Tensor
    target_squares: torch.Tensor

    @classmethod
    def zeros(cls, n_folds: int, n_features: int, n_targets: int, device: torch.device | str) -> RidgeSums:
        def make(*shape: int) -> torch.Tensor:
            return torch.zeros(n_folds, *shape, dtype=torch.float64, device=device)

        return cls(
            make(), make(n_features), make(n_targets), make(n_features, n_features), make(n_features, n_targets),
            make(n_targets),
        )  # fmt: skip

    @staticmethod
    def nbytes(n_folds: int, n_features: int, n_targets: int) -> int:
        """Bytes of :meth:`zeros` ``(n_folds, n_features, n_targets)``: float64."""
        q, t = n_features, n_targets
        return 8 * n_folds * (1 + q + t + q * q + q * t + t)

    def add(self, features: torch.Tensor, targets: torch.Tensor, folds: torch.Tensor) -> None:
        """Add samples: features (n, 2 lambda + 1, q), targets (n, 2 lambda + 1, t), folds (n,) the
        fold of each sample (from :func:`nhamil.heads.ridge.fold_of_each_sample`)."""
        x = features.to(torch.float64).reshape(-1, features.shape[-1])
        y = targets.to(torch.float64).reshape(-1, targets.shape[-1])
        rows_fold = folds.to(x.device).repeat_interleave(features.shape[1])
        for fold in rows_fold.unique().tolist():
            chosen = rows_fold == fold
            self._merge(fold, x[chosen], y[chosen])

    def _merge(self, fold: int, x: torch.Tensor, y: torch.Tensor) -> None:
        """Merge rows x (m, q), y (m, t) into one fold's statistics."""
        x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
        xc, yc = x - x_mean, y - y_mean
        before = self.counts[fold].clone()
        total = before + len(x)
        weight = before * len(x) / total
        dx, dy = x_mean - self.feature_means[fold], y_mean - self.target_means[fold]
        self.gram[fold] += xc.T @ xc + weight * (dx[:, None] * dx)
        self.moment[fold] += xc.T @ yc + weight * (dx[:, None] * dy)
        self.target_squares[fold] += yc.pow(2).sum(dim=0) + weight * dy.pow(2)
        self.feature_means[fold] += dx * (len(x) / total)
        self.target_means[fold] += dy * (len(x) / total)
        self.counts[fold] = total

    def fit(
        self, *, intercept: bool, settings: RidgeSettings, all_reduce: Callable[[list[torch.Tensor]], None] = _alone
    ) -> RidgeFit:
        """The :class:`RidgeFit` of every sample added (``fit_ridge``'s, to round-off): alpha per
        target by the validation errors summed over folds, then the solve on all folds.
        ``all_reduce`` sums a list of tensors in place over the processes of a distributed fit
        (:meth:`nhamil.distributed.Shard.all_reduce`), each holding the sums of its own samples."""
        return self.reduced(intercept=intercept, all_reduce=all_reduce).solve(settings)

    def reduced(self, *, intercept: bool, all_reduce: Callable[[list[torch.Tensor]], None] = _alone) -> ReducedSums:
        """The sums of all processes about their common means (a collective step: every process
        of a distributed fit calls it, in the same order), ready for :meth:`ReducedSums.solve`,
        which any one process can then do alone."""
        return ReducedSums(*self._about_mean(intercept, all_reduce))

    def _about_mean(
        self, intercept: bool, all_reduce: Callable[[list[torch.Tensor]], None]
    ) -> tuple[torch.Tensor, ...]:
        """Per-fold gram (k, q, q), moment (k, q, t), target squares (k, t) about the means over all
        folds and processes (about 0 without an intercept), summed over processes, the means and the
        number of rows:
        each process shifts its statistics to the common point (adding non-negative terms) first."""
        counts, sums = self.counts.clone(), self.counts[:, None] * self.feature_means
        target_sums = self.counts[:, None] * self.target_means
        all_reduce([counts, sums, target_sums])
        n_rows = counts.sum()
        m = sums.sum(dim=0) / n_rows if intercept else sums.new_zeros(sums.shape[1])
        ybar = target_sums.sum(dim=0) / n_rows if intercept else target_sums.new_zeros(target_sums.shape[1])
        dx, dy, n = self.feature_means - m, self.target_means - ybar, self.counts[:, None]
        gram = self.gram + n[:, :, None] * (dx[:, :, None] * dx[:, None, :])
        moment = self.moment + n[:, :, None] * (dx[:, :, None] * dy[:, None, :])
        squares = self.target_squares + n * dy.pow(2)
        all_reduce([gram, moment, squares])
        return gram, moment, squares, m, ybar, n_rows


@dataclass(frozen=True)
class ReducedSums:
    """One head's statistics over all processes, about the common means: gram (k, q, q), moment
    (k, q, t), target squares (k, t) per fold; feature_mean (q,), target_mean (t,); n_rows."""

    gram: torch.Tensor
    moment: torch.Tensor
    squares: torch.Tensor
    feature_mean: torch.Tensor
    target_mean: torch.Tensor
    n_rows: torch.Tensor

    def solve(self, settings: RidgeSettings) -> RidgeFit:
        """Alpha per target by the validation errors summed over folds, then the solve on all
        folds, in the scaled coordinates of ``fit_ridge``."""
        gram, moment, squares = self.gram, self.moment, self.squares
        total_gram, total_moment = gram.sum(dim=0), moment.sum(dim=0)
        n_features = total_gram.shape[0]
        scale = (total_gram.diagonal().sum().clamp_min(0.0) / (self.n_rows * n_features)).sqrt().clamp_min(1e-12)
        alphas = torch.as_tensor(settings.alphas, dtype=torch.float64, device=gram.device)
        errors = sum(
            _validation_errors(total_gram - gram[f], total_moment - moment[f], gram[f], moment[f], squares[f], alphas)
            for f in range(len(gram))
        )
        best = alphas[errors.argmin(dim=0)]
        weights = ridge_coefficients(total_gram, total_moment, best, n_features)
        return RidgeFit(weights * scale, scale.expand(n_features).clone(), self.feature_mean, self.target_mean, best)


def _validation_errors(
    train_gram: torch.Tensor,
    train_moment: torch.Tensor,
    gram: torch.Tensor,
    moment: torch.Tensor,
    squares: torch.Tensor,
    alphas: torch.Tensor,
) -> torch.Tensor:
    """(n_alphas, t) squared errors on one fold, |Y - X W|^2 = Y.Y - 2 W.(X^T Y) + W.(X^T X W)
    per target, of the fits W (n_alphas, q, t) on the other folds' sums."""
    weights = ridge_coefficients(train_gram, train_moment, alphas[:, None, None], train_gram.shape[0])
    return squares - 2 * (weights * moment).sum(dim=1) + (weights * (gram @ weights)).sum(dim=1)


def streamed_nystrom_maps(
    read_chunks: Callable[[], Iterable[ChunkInputs]],
    settings: KernelSettings,
    gathered: Callable[[Any], list[Any]],
    device: torch.device | str,
) -> dict[Hashable, NystromMap]:
    """The Nyström map of each head that :func:`nhamil.heads.kernel.fit_kernel_ridge` would build
    from all samples at once (the same active samples, scale and projection, to round-off), from
    two passes over this process's chunks (``read_chunks()`` yields them anew each time), on
    ``device``. ``gathered(value)``: every process's ``value`` in rank order (:meth:`Shard.gathered`);
    what is gathered travels on the CPU."""
    scales, invariants = _scales_and_invariants(read_chunks(), gathered, device)
    chosen = {head: farthest_point_sampling(u, settings.n_active) for head, u in invariants.items()}
    active = _active_features(read_chunks(), chosen, scales, gathered, device)
    return {
        head: NystromMap.over(active[head], invariants[head][chosen[head]], scales[head], settings.zeta)
        for head in chosen
    }


def _scales_and_invariants(
    chunks: Iterable[ChunkInputs], gathered: Callable[[Any], list[Any]], device: torch.device | str
) -> tuple[dict[Hashable, torch.Tensor], dict[Hashable, torch.Tensor]]:
    """Per head: the feature scale and the (n, q0) unit invariants of all n samples, in order."""
    squares: dict[Hashable, list] = {}
    rows: dict[Hashable, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for inputs in chunks:
        for head, (features, invariants, indices) in inputs.items():
            x = features.to(torch.float64)
            total = squares.setdefault(head, [0.0, 0])
            total[0], total[1] = total[0] + x.pow(2).sum().item(), total[1] + x.numel()
            rows.setdefault(head, []).append((indices.cpu(), unit_invariants(invariants.to(torch.float64)).cpu()))
    everyone = gathered((squares, rows))
    scales, invariants = {}, {}
    for head in sorted({h for theirs, _ in everyone for h in theirs}, key=repr):
        total = sum(theirs[head][0] for theirs, _ in everyone if head in theirs)
        count = sum(theirs[head][1] for theirs, _ in everyone if head in theirs)
        parts = [part for _, theirs in everyone for part in theirs.get(head, [])]
        indices = torch.cat([i for i, _ in parts])
        u = torch.cat([v for _, v in parts])
        scales[head] = feature_scale(torch.as_tensor(total, dtype=torch.float64, device=device), count)
        invariants[head] = u[indices.argsort()].to(device)
    return scales, invariants


def _active_features(
    chunks: Iterable[ChunkInputs],
    chosen: dict[Hashable, torch.Tensor],
    scales: dict[Hashable, torch.Tensor],
    gathered: Callable[[Any], list[Any]],
    device: torch.device | str,
) -> dict[Hashable, torch.Tensor]:
    """Per head: the (m, 2 lambda + 1, q) scaled features of its ``chosen`` samples, in that order."""
    found: dict[Hashable, dict[int, torch.Tensor]] = {head: {} for head in chosen}
    for inputs in chunks:
        for head, (features, _, indices) in inputs.items():
            wanted = torch.isin(indices, chosen[head].to(indices.device))
            for index, row in zip(indices[wanted].tolist(), features[wanted], strict=True):
                found[head][index] = (row.to(torch.float64) / scales[head]).cpu()
    everyone = gathered(found)
    return {
        head: torch.stack(
            [next(theirs[head][i] for theirs in everyone if i in theirs[head]) for i in rows.tolist()]
        ).to(device)
        for head, rows in chosen.items()
    }
