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
from nhamil.reference.claims import ShardClaims, claims_of, failure_path, read_failure, write_failure
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


class _InlineExecutor:
    """``submit`` runs the job at once in this process, with ``threads`` threads."""

    def __init__(self, threads: int):
        self._threads = store.threads_limited(threads)

    def __enter__(self):
        self._threads.__enter__()
        return self

    def __exit__(self, *exc):
        return self._threads.__exit__(*exc)

    def submit(self, function, *args) -> Future:
        future = Future()
        try:
            future.set_result(function(*args))
        except Exception as err:  # noqa: BLE001 - the caller records it as the structure's failure
            future.set_exception(err)
        return future


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
        pool = store.worker_pool(min(n_workers, len(pending)), threads) if parallel else _InlineExecutor(threads)
        queue, in_flight = iter(pending), {}
        with pool:
            while True:
                while len(in_flight) < n_workers and (path := next(queue, None)) is not None:
                    self._start(pool, path, in_flight)
                if not in_flight:
                    return
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    self._finish(future, in_flight.pop(future))

    def _start(self, pool, path: Path, in_flight: dict) -> None:
        """Claim ``path`` and submit it, or count it as skipped, reused or failed before."""
        label = self.wanted[path][1]
        claim = self.claims.take(path)
        if not claim.ours:
            self.summary.skipped.append({"frame": label, "owner": claim.previous})
            return self._advance()
        if claim.previous is not None:
            self.summary.taken_over.append({"frame": label, "owner": claim.previous})
        record = store._record_problem(path, self.wanted[path][0]) if path.exists() else None
        if isinstance(record, store.ReferenceRecord):
            _reused(self.summary, label, record)
            return self._release(path)
        if _failed_before(path, self.wanted, self.summary, self.retry_failed):
            return self._release(path)
        in_flight[pool.submit(store._compute_and_store, self.wanted[path][0], self.scf, self.projection, path)] = path

    def _finish(self, future: Future, path: Path) -> None:
        """Count a finished computation; record a failure (the pool's death and a full disk end the run)."""
        label = self.wanted[path][1]
        error = future.exception()
        if isinstance(error, BrokenProcessPool) or (isinstance(error, OSError) and store._is_disk_full(error)):
            raise error
        if error is not None:
            message = f"{type(error).__name__}: {one_line(error)}"
            write_failure(path, label, message, self.claims.owner)
            self.summary.failed.append({"frame": label, "error": message, "earlier": False})
            return self._release(path)
        record = future.result()
        failure_path(path).unlink(missing_ok=True)
        self.summary.computed.append(label)
        self.summary.scf_seconds += record.wall_time
        if not record.converged:
            self.summary.not_converged.append(label)
        self._release(path)

    def _release(self, path: Path) -> None:
        self.claims.release(path)
        self._advance()

    def _advance(self) -> None:
        counts = {name: len(getattr(self.summary, name)) for name in ("computed", "reused", "skipped", "failed")}
        self.bar.update()
        self.bar.set_postfix(counts)
