"""One shard of a reference build into the shared per-structure cache (``store.py``).

Shard ``k`` of ``n`` visits every distinct structure: its own, ``k, k + n, k + 2n, ...`` of the
selection, first, then the others' from the back, so that a shard that is done early takes work
that the other shards have not reached yet instead of waiting. A structure whose record is in the
cache is reused; one that another live shard has claimed (``claims.py``) is skipped; the rest are
claimed, computed (in this process or ``n_workers`` worker processes of ``threads_per_worker``
threads each), written and released. A structure whose computation raised is recorded in a
failure file and reported, also by later runs, until ``retry_failed``. A killed shard leaves its
claims behind; they go stale (dead pid on this host, or no heartbeat for ``stale_after_s``) and
the next run takes them over, so rerunning the same command resumes the build.

Training (``store.build_reference_set``) builds through the same claims and compute loop
(:func:`compute_missing`), as an owner of no shard: it claims what it computes, and instead of
skipping a structure that another live shard or training process holds it waits for its record
(or takes the claim over once it is stale); a failure recorded for a structure it needs is an
``InputError`` naming the frame. So shards and the jobs of a training sweep share one cache and
compute each structure once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ase
from tqdm.auto import tqdm

from nhamil.errors import InputError, one_line
from nhamil.reference import store
from nhamil.reference.claims import Claim, ShardClaims, claims_of, failure_path, read_failure, write_failure
from nhamil.reference.settings import ProjectionSettings, ScfSettings


@dataclass
class ShardSummary:
    """What one shard did, by frame number of the data file: ``computed``, ``reused`` (already in
    the cache), ``skipped`` (claimed by a live shard: frame and owner), ``failed`` (frame,
    error, ``earlier`` if a previous run failed it), ``taken_over`` (stale claims: frame and
    previous owner), ``not_converged`` (computed or reused SCFs flagged unconverged); ``seconds``
    of wall time, ``scf_seconds`` summed over the computed SCFs."""

    shard: int
    n_shards: int
    folder: str
    structures: int
    computed: list[int] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    taken_over: list[dict] = field(default_factory=list)
    not_converged: list[int] = field(default_factory=list)
    seconds: float = 0.0
    scf_seconds: float = 0.0

    @property
    def structures_per_minute(self) -> float:
        """Computed structures per minute of this shard's wall time."""
        return 60.0 * len(self.computed) / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        """Plain JSON data, with the counts and ``structures_per_minute``."""
        counts = {f"n_{name}": len(getattr(self, name)) for name in ("computed", "reused", "skipped", "failed")}
        return {**asdict(self), **counts, "structures_per_minute": self.structures_per_minute}

    def line(self) -> str:
        """One line: the counts, the time and the throughput."""
        return (
            f"reference shard {self.shard}/{self.n_shards}: {len(self.computed)} computed, {len(self.reused)} reused, "
            f"{len(self.skipped)} skipped (claimed by other shards), {len(self.failed)} failed, "
            f"{len(self.not_converged)} not converged, {len(self.taken_over)} stale claims taken over; "
            f"{self.seconds:.1f} s ({self.structures_per_minute:.1f} structures/min) in {self.folder}"
        )


def check_shard_settings(shard: int, n_shards: int, n_workers: int, threads_per_worker: int, stale_after_s: float):
    """``InputError`` naming the first bad setting: ``0 <= shard < n_shards``, ``n_workers``,
    ``threads_per_worker`` >= 1, ``stale_after_s`` > 0."""
    if not isinstance(n_shards, int) or n_shards < 1:
        raise InputError(f"n_shards={n_shards} must be an integer >= 1 (how many shards share the build)")
    if not isinstance(shard, int) or not 0 <= shard < n_shards:
        raise InputError(f"shard={shard} must be an integer with 0 <= shard < n_shards={n_shards} (they count from 0)")
    for name, value in (("data.n_workers", n_workers), ("threads_per_worker", threads_per_worker)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name}={value} must be an integer >= 1")
    if not stale_after_s > 0:
        raise InputError(f"stale_after_s={stale_after_s} must be > 0 (seconds before an unrefreshed claim is stale)")


def shard_order(n: int, shard: int, n_shards: int) -> list[int]:
    """The order in which shard ``shard`` of ``n_shards`` visits ``n`` structures: its own
    (``shard::n_shards``), then the others' from the last."""
    own = list(range(shard, n, n_shards))
    mine = set(own)
    return own + [i for i in reversed(range(n)) if i not in mine]


def build_shard(
    frames: Sequence[ase.Atoms],
    scf: ScfSettings,
    projection: ProjectionSettings,
    cache_dir: str | Path,
    *,
    labels: Sequence[int] | None = None,
    shard: int = 0,
    n_shards: int = 1,
    n_workers: int = 1,
    threads_per_worker: int = 1,
    stale_after_s: float = 600.0,
    retry_failed: bool = False,
    rebuild_damaged: bool = False,
    progress: bool = True,
) -> ShardSummary:
    """Run shard ``shard`` of ``n_shards`` of the reference build of ``frames`` (positions in Å;
    ``labels``: their frame numbers in the user's data file, default 0, 1, ...) into the cache
    of ``store.build_reference_set`` and return its summary (see the module docstring), with a
    progress bar on stderr (``progress=False``: none).

    Raises before any work: ``InputError`` for a bad setting (:func:`check_shard_settings`) or
    label count, ``ValueError`` naming an element the settings do not cover, ``CorruptCacheError``
    naming damaged records unless ``rebuild_damaged``. A full disk raises ``OSError(ENOSPC)``;
    every record written before stays valid."""
    start = time.perf_counter()
    check_shard_settings(shard, n_shards, n_workers, threads_per_worker, stale_after_s)
    labels = list(range(len(frames))) if labels is None else list(labels)
    if len(labels) != len(frames):
        raise InputError(f"{len(labels)} labels for {len(frames)} frames; give one frame number per frame")
    folder = store.cache_folder(cache_dir, scf, projection)
    wanted = _distinct(frames, labels, folder)
    store.check_elements([atoms.numbers for atoms, _ in wanted.values()], scf, projection)
    paths = list(wanted)
    summary = ShardSummary(shard, n_shards, str(folder), len(paths))
    pending = _scan(wanted, [paths[i] for i in shard_order(len(paths), shard, n_shards)], summary, rebuild_damaged)
    pending = [path for path in pending if not _failed_before(path, wanted, summary, retry_failed)]
    bar = tqdm(
        total=len(paths), initial=len(paths) - len(pending), desc=f"reference shard {shard}/{n_shards}",
        unit="structure", disable=not progress,
    )  # fmt: skip
    with bar, claims_of(shard, stale_after_s) as claims:
        _Run(wanted, scf, projection, claims, summary, bar, retry_failed).run(pending, n_workers, threads_per_worker)
    summary.seconds = time.perf_counter() - start
    return summary


def _distinct(frames: Sequence[ase.Atoms], labels: list[int], folder: Path) -> dict[Path, tuple[ase.Atoms, int]]:
    """{record path: (structure, first frame label)} of the distinct geometries, in order."""
    wanted = {}
    for atoms, label in zip(frames, labels, strict=True):
        path = folder / f"{store.geometry_hash(atoms.numbers, atoms.positions)}.h5"
        wanted.setdefault(path, (ase.Atoms(atoms.numbers, atoms.positions), label))
    return wanted


def _scan(wanted: dict, order: list[Path], summary: ShardSummary, rebuild_damaged: bool) -> list[Path]:
    """Count the sound cached records as reused; the paths left to compute, in ``order``.
    ``CorruptCacheError`` naming the damaged or misplaced records unless ``rebuild_damaged``."""
    cached, damaged = store._read_cache(wanted)
    if damaged and not rebuild_damaged:
        raise store.CorruptCacheError(store._damaged_message(damaged))
    for path in order:
        if path in cached:
            _reused(summary, wanted[path][1], cached[path])
    return [path for path in order if path not in cached]


def _reused(summary: ShardSummary, label: int, record: store.ReferenceRecord) -> None:
    summary.reused.append(label)
    if not record.converged:
        summary.not_converged.append(label)


def _failed_before(path: Path, wanted: dict, summary: ShardSummary, retry_failed: bool) -> bool:
    """True (and counted as failed) if an earlier run left a failure file for ``path`` and
    ``retry_failed`` is off."""
    failure = None if retry_failed else read_failure(path)
    if failure is not None:
        summary.failed.append({"frame": wanted[path][1], "error": failure.get("error", ""), "earlier": True})
    return failure is not None


@dataclass
class _Run:
    """The compute loop of one shard: claim, submit, record the outcome, release."""

    wanted: dict
    scf: ScfSettings
    projection: ProjectionSettings
    claims: ShardClaims
    summary: ShardSummary
    bar: tqdm
    retry_failed: bool

    def run(self, pending: list[Path], n_workers: int, threads: int) -> None:
        """Compute ``pending`` with at most ``n_workers`` structures claimed and in flight at once."""
        if not pending:
            return
        parallel = n_workers > 1 and len(pending) > 1
        pool = store.worker_pool(min(n_workers, len(pending)), threads) if parallel else store.InlineExecutor(threads)
        with pool:
            self._work(pool, pending, n_workers)

    def _work(self, pool, pending: list[Path], n_workers: int) -> None:
        """Start and finish every structure of ``pending`` in ``pool``."""
        queue, in_flight = iter(pending), {}
        while True:
            while len(in_flight) < n_workers and (path := next(queue, None)) is not None:
                self._start(pool, path, in_flight)
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(future, in_flight.pop(future))

    def _start(self, pool, path: Path, in_flight: dict) -> None:
        """Claim ``path`` and submit it, or count it as held elsewhere, reused or failed before."""
        label = self.wanted[path][1]
        claim = self.claims.take(path)
        if not claim.ours:
            return self._held_elsewhere(path, claim)
        if claim.previous is not None:
            self.summary.taken_over.append({"frame": label, "owner": claim.previous})
        record = store._record_problem(path, self.wanted[path][0]) if path.exists() else None
        if isinstance(record, store.ReferenceRecord):
            _reused(self.summary, label, record)
            return self._release(path)
        if self._failed_earlier(path):
            return self._release(path)
        in_flight[pool.submit(store._compute_and_store, self.wanted[path][0], self.scf, self.projection, path)] = path

    def _held_elsewhere(self, path: Path, claim: Claim) -> None:
        """A shard skips a structure that a live owner holds."""
        self.summary.skipped.append({"frame": self.wanted[path][1], "owner": claim.previous})
        self._advance()

    def _failed_earlier(self, path: Path) -> bool:
        return _failed_before(path, self.wanted, self.summary, self.retry_failed)

    def _finish(self, future: Future, path: Path) -> None:
        """Count a finished computation; record a failure (the pool's death and a full disk end the run)."""
        label = self.wanted[path][1]
        error = future.exception()
        if isinstance(error, BrokenProcessPool) or (isinstance(error, OSError) and store._is_disk_full(error)):
            raise error
        if error is not None:
            return self._failed(path, label, error)
        record = future.result()
        failure_path(path).unlink(missing_ok=True)
        self.summary.computed.append(label)
        self.summary.scf_seconds += record.wall_time
        if not record.converged:
            self.summary.not_converged.append(label)
        self._release(path)

    def _failed(self, path: Path, label: int, error: BaseException) -> None:
        """A shard records the failure (for later runs) and goes on with the other structures."""
        message = f"{type(error).__name__}: {one_line(error)}"
        write_failure(path, label, message, self.claims.owner)
        self.summary.failed.append({"frame": label, "error": message, "earlier": False})
        self._release(path)

    def _release(self, path: Path) -> None:
        self.claims.release(path)
        self._advance()

    def _advance(self) -> None:
        counts = {name: len(getattr(self.summary, name)) for name in ("computed", "reused", "skipped", "failed")}
        self.bar.update()
        self.bar.set_postfix(counts)


def compute_missing(
    wanted: dict[Path, tuple[ase.Atoms, int]],
    pending: list[Path],
    scf: ScfSettings,
    projection: ProjectionSettings,
    *,
    n_workers: int,
    stale_after_s: float,
    poll_s: float,
    progress: bool = True,
) -> ShardSummary:
    """Training's share of the build (``store.build_reference_set``): compute the structures
    ``pending`` (record paths of ``wanted``, {path: (structure, frame label)}, missing from the
    cache) through the claims of :func:`build_shard`, in this process or ``n_workers`` worker
    processes, with a progress bar (``progress=False``: none). Always one thread per structure:
    threaded PySCF sums in a varying order, and references rebuilt that way changed the water
    example's H MAE in its 4th digit.

    A structure that another live owner holds is waited for, looked at every ``poll_s`` seconds
    (the bar says how many), until its record appears, or its claim is released or goes stale
    (then it is computed here). Returns the summary: ``computed`` lists the frames computed here,
    the others of ``pending`` were written by other owners. ``InputError`` naming the frame and
    the error for a structure that another run recorded as failed (before any work if it was
    recorded before the call); an error of this process's computation is raised as it is (nothing
    is recorded: the claim is released and the next build computes it again)."""
    failed = [(path, failure) for path in pending if (failure := read_failure(path)) is not None]
    if failed:
        raise InputError(_recorded_failures_message(failed, wanted))
    folder = str(next(iter(wanted)).parent) if wanted else ""
    summary = ShardSummary(0, 1, folder, len(wanted))
    if not pending:
        return summary
    bar = tqdm(total=len(pending), desc="PySCF reference", unit="frame", disable=not progress)
    with bar, claims_of(None, stale_after_s) as claims:
        _SetRun(wanted, scf, projection, claims, summary, bar, retry_failed=False, poll_s=poll_s).run(
            pending, n_workers, 1
        )
    return summary


def _recorded_failures_message(failed: list[tuple[Path, dict]], wanted: dict) -> str:
    """One line naming the frames whose failure another run recorded, the first error and the remedy."""
    frames = [wanted[path][1] for path, _ in failed]
    path, failure = failed[0]
    who = ", ".join(f"{key} {failure[key]}" for key in ("host", "pid", "shard", "time") if key in failure)
    return (
        f"the reference computation of frame(s) {store._listed(frames)} of the data file failed in another run "
        f"(frame {frames[0]}: {failure.get('error', '')}; {who}); fix the cause, then delete {failure_path(path)}"
        f"{' and the others' if len(failed) > 1 else ''} or rerun python -m nhamil.reference with retry_failed=true"
    )


@dataclass
class _SetRun(_Run):
    """The compute loop of a training build: waits for the structures that live owners hold,
    raises on failures (see :func:`compute_missing`)."""

    poll_s: float
    waiting: list[Path] = field(default_factory=list)

    def _work(self, pool, pending: list[Path], n_workers: int) -> None:
        """Start and finish ``pending``, then, every ``poll_s`` seconds, those held by others."""
        super()._work(pool, pending, n_workers)
        while self.waiting:
            self.bar.set_postfix_str(f"waiting on {len(self.waiting)} structure(s) held by others")
            time.sleep(self.poll_s)
            held, self.waiting = self.waiting, []
            super()._work(pool, held, n_workers)
        self.bar.set_postfix_str("")

    def _held_elsewhere(self, path: Path, claim: Claim) -> None:
        self.waiting.append(path)

    def _failed_earlier(self, path: Path) -> bool:
        failure = read_failure(path)
        if failure is not None:
            raise InputError(_recorded_failures_message([(path, failure)], self.wanted))
        return False

    def _failed(self, path: Path, label: int, error: BaseException) -> None:
        raise error

    def _advance(self) -> None:
        self.bar.update()
