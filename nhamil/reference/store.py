"""Reference records and their on-disk cache.

Layout: ``<cache_dir>/<settings_hash>/settings.json`` (the ``ScfSettings`` and
``ProjectionSettings`` that made the folder, with ``FORMAT_VERSION`` and the PySCF version, human
readable) and one ``<geometry_hash>.h5`` per structure. ``settings_hash`` covers both settings
and ``FORMAT_VERSION``, so a changed setting never reads old results (the PySCF version is
recorded, not hashed: after an upgrade that changes results, use a new ``cache_dir``).
``geometry_hash`` covers the atomic numbers (int64) and positions (float64, Å) byte for byte.
Files are written to a temporary file in the same folder and then renamed, so a file present
is complete: an interrupted build (or a full disk) keeps every finished structure and a rerun
computes only the missing ones. Each file carries a checksum, and its atomic numbers and
positions must equal those of the structure asked for: a damaged or misplaced file is a
``DataFileError`` naming it, never a silent number (``rebuild_damaged=True`` recomputes it).

Several processes share one cache folder: the jobs of a training sweep and the shards of
``python -m nhamil.reference`` claim a structure (``claims.py``) before they compute it, and a
training build waits for a structure that another live process holds instead of computing it
again (``build.py``, :func:`build_reference_set`).

HDF5 file (``FORMAT_VERSION`` 2), canonical AO order (``nhamil.orbitals``), float64:

=================  ==================  ===========================================
dataset            shape               content
=================  ==================  ===========================================
numbers            (n_atoms,) int64    atomic numbers
positions          (n_atoms, 3)        positions, Å
fock               (n_ao, n_ao)        Fock matrix of the final density, Hartree
overlap            (n_ao, n_ao)        AO overlap
mo_energy          (n_mo,)             orbital energies, Hartree, ascending
mo_coeff           (n_ao, n_mo)        orbitals, ``F C = S C diag(mo_energy)``
mo_occ             (n_mo,)             electrons per orbital
saph               (n_min, n_min)      orthogonal SAPH, minimal basis, Hartree
saph_energies      (n_min,)            eigenvalues of ``saph`` (kept orbitals), Hartree
=================  ==================  ===========================================

Attributes: ``format_version`` (int), ``e_tot`` (Hartree), ``converged`` (bool), ``n_cycles``
(SCF iterations), ``wall_time`` (s, SCF only), ``n_core`` (dropped core orbitals), ``sha256``
(hex digest of every dataset's name, dtype, shape and bytes and of the other attributes, see
:func:`record_checksum`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ase
import h5py
import numpy as np

from nhamil.atomic import atomic_path
from nhamil.errors import DataFileError, InputError
from nhamil.orbitals import AtomicBasis
from nhamil.reference.saph import n_core_orbitals, projected_valence_hamiltonian
from nhamil.reference.scf import run_scf
from nhamil.reference.settings import ProjectionSettings, ScfSettings
from nhamil.reference.workers import die_with_parent

#: Bumped whenever the meaning or layout of a cached file changes; part of the settings hash.
FORMAT_VERSION = 2

_ARRAYS = ("numbers", "positions", "fock", "overlap", "mo_energy", "mo_coeff", "mo_occ", "saph", "saph_energies")
_SCALARS = {"e_tot": float, "converged": bool, "n_cycles": int, "wall_time": float, "n_core": int}


#: Remedy for damaged or misplaced cache files, from the command line and from Python.
REBUILD_ADVICE = "rebuild with data.rebuild_damaged=true (build_reference_set(..., rebuild_damaged=True))"

#: How many frames or files a message names before it gives only a count of the rest.
_NAMED = 10


class CorruptCacheError(DataFileError):
    """A cache file that is damaged (unreadable, checksum mismatch) or misplaced (holds another
    structure); the message names the file(s) and the remedy."""


class UnconvergedSCFError(InputError):
    """Some structures did not converge; ``frames`` lists their frame numbers (``labels``)."""

    def __init__(self, frames: list[int], folder: Path):
        self.frames = frames
        super().__init__(
            f"SCF did not converge for frame(s) {_listed(frames)} of the data file (stored, flagged, in "
            f"{folder}); raise reference.max_cycle, or set data.allow_unconverged=true "
            "(allow_unconverged=True) to use them flagged"
        )


def _listed(items: Sequence) -> str:
    """``[a, b, c]``, or the first ``_NAMED`` and a count of the rest."""
    items = list(items)
    if len(items) <= _NAMED:
        return str(items)
    return f"{items[:_NAMED]} and {len(items) - _NAMED} more"


@dataclass(frozen=True)
class ReferenceRecord:
    """Everything computed for one structure (see the module docstring for shapes and units)."""

    numbers: np.ndarray
    positions: np.ndarray
    fock: np.ndarray
    overlap: np.ndarray
    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    saph: np.ndarray
    saph_energies: np.ndarray
    e_tot: float
    converged: bool
    n_cycles: int
    wall_time: float
    n_core: int

    @property
    def n_occupied(self) -> int:
        """Occupied orbitals of the full basis."""
        return int(np.count_nonzero(self.mo_occ > 0))

    @property
    def saph_n_occupied(self) -> int:
        """Occupied orbitals among the SAPH's eigenvalues (a subset of ``mo_energy``)."""
        return int(np.count_nonzero(self.saph_energies <= self.mo_energy[self.n_occupied - 1]))


def compute_reference(atoms: ase.Atoms, scf: ScfSettings, projection: ProjectionSettings) -> ReferenceRecord:
    """SCF and SAPH of one structure (positions in Å)."""
    result = run_scf(atoms, scf)
    basis = AtomicBasis.from_pyscf(scf.basis, atoms.numbers)
    saph, energies, _ = projected_valence_hamiltonian(result, atoms.numbers, basis, projection)
    return ReferenceRecord(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        fock=result.fock,
        overlap=result.overlap,
        mo_energy=result.mo_energy,
        mo_coeff=result.mo_coeff,
        mo_occ=result.mo_occ,
        saph=saph,
        saph_energies=energies,
        e_tot=result.e_tot,
        converged=result.converged,
        n_cycles=result.n_cycles,
        wall_time=result.wall_time,
        n_core=n_core_orbitals(atoms.numbers, projection),
    )


def settings_record(scf: ScfSettings, projection: ProjectionSettings) -> dict:
    """The plain data that ``settings_hash`` covers."""
    return {"format_version": FORMAT_VERSION, "scf": scf.to_dict(), "projection": projection.to_dict()}


def settings_hash(scf: ScfSettings, projection: ProjectionSettings) -> str:
    """16 hex digits identifying the settings and ``FORMAT_VERSION``."""
    text = json.dumps(settings_record(scf, projection), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def geometry_hash(numbers, positions) -> str:
    """32 hex digits identifying atomic numbers and float64 positions (Å), exactly."""
    digest = hashlib.sha256(np.ascontiguousarray(numbers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(positions, dtype=np.float64).tobytes())
    return digest.hexdigest()[:32]


def record_checksum(arrays: dict[str, np.ndarray], scalars: dict) -> str:
    """sha256 hex digest of the datasets (name, dtype, shape, bytes, in ``_ARRAYS`` order) and
    of the scalar attributes (with ``format_version``, as sorted JSON: floats exactly)."""
    digest = hashlib.sha256()
    for name in _ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    scalars = {name: kind(scalars[name]) for name, kind in _SCALARS.items()}
    digest.update(json.dumps({**scalars, "format_version": FORMAT_VERSION}, sort_keys=True).encode())
    return digest.hexdigest()


def write_record(record: ReferenceRecord, path: Path) -> None:
    """Write ``record`` to ``path`` (HDF5, see the module docstring) atomically, with its
    checksum. A full disk raises ``OSError(ENOSPC)`` naming ``path`` (and leaves no file there)."""
    arrays = {name: np.asarray(getattr(record, name)) for name in _ARRAYS}
    scalars = {name: getattr(record, name) for name in _SCALARS}
    try:
        with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
            for name, array in arrays.items():
                file.create_dataset(name, data=array)
            file.attrs.update(scalars, format_version=FORMAT_VERSION, sha256=record_checksum(arrays, scalars))
    except OSError as err:
        if _is_disk_full(err):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise


def _is_disk_full(err: OSError) -> bool:
    """True for a full disk, also when h5py reports it only in its message (``errno = 28``)."""
    return err.errno == errno.ENOSPC or "errno = 28" in str(err) or os.strerror(errno.ENOSPC) in str(err)


def read_record(path: Path, expected: ase.Atoms | None = None, label: int | None = None) -> ReferenceRecord:
    """Read one cached record and verify its checksum and, given ``expected``, that it holds
    exactly those atomic numbers and positions (Å, float64). ``CorruptCacheError`` naming the
    file (and frame ``label`` of the user's data file) otherwise."""
    problem = _record_problem(path, expected)
    if isinstance(problem, ReferenceRecord):
        return problem
    frame = "" if label is None else f" (frame {label} of the data file)"
    raise CorruptCacheError(f"reference cache file {path}{frame} is {problem}; {REBUILD_ADVICE}")


def _record_problem(path: Path, expected: ase.Atoms | None) -> ReferenceRecord | str:
    """The record at ``path``, or what is wrong with it (one phrase)."""
    try:
        with h5py.File(path, "r") as file:
            if file.attrs["format_version"] != FORMAT_VERSION:
                return f"damaged (format_version {file.attrs['format_version']}, expected {FORMAT_VERSION})"
            arrays = {name: file[name][()] for name in _ARRAYS}
            scalars = {name: kind(file.attrs[name]) for name, kind in _SCALARS.items()}
            stored_checksum = str(file.attrs["sha256"])
    except (OSError, KeyError, ValueError, TypeError) as err:
        return f"damaged (cannot be read: {' '.join(str(err).split())})"
    if record_checksum(arrays, scalars) != stored_checksum:
        return "damaged (checksum mismatch)"
    if expected is not None and not _same_structure(arrays, expected):
        return "misplaced (it holds another structure than the one asked for)"
    return ReferenceRecord(**arrays, **scalars)


def _same_structure(arrays: dict[str, np.ndarray], atoms: ase.Atoms) -> bool:
    """Stored numbers and positions equal those of ``atoms`` exactly (int64, float64 Å)."""
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    positions = np.asarray(atoms.positions, dtype=np.float64)
    return (
        arrays["numbers"].shape == numbers.shape
        and arrays["positions"].shape == positions.shape
        and np.array_equal(arrays["numbers"], numbers)
        and np.array_equal(arrays["positions"], positions)
    )


def cache_folder(cache_dir: str | Path, scf: ScfSettings, projection: ProjectionSettings) -> Path:
    """``<cache_dir>/<settings_hash>``, created with its ``settings.json`` if absent."""
    import pyscf

    folder = Path(cache_dir) / settings_hash(scf, projection)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "settings.json").exists():
        text = json.dumps({**settings_record(scf, projection), "pyscf_version": pyscf.__version__}, indent=2)
        try:
            with atomic_path(folder / "settings.json") as temporary:
                Path(temporary).write_text(text + "\n")
        except OSError as err:
            if _is_disk_full(err):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "settings.json")) from None
            raise
    return folder


def build_reference_set(
    frames: Sequence[ase.Atoms],
    scf: ScfSettings,
    projection: ProjectionSettings,
    cache_dir: str | Path,
    n_workers: int = 2,
    progress: bool = True,
    allow_unconverged: bool = False,
    labels: Sequence[int] | None = None,
    rebuild_damaged: bool = False,
    *,
    stale_after_s: float = 600.0,
    poll_s: float = 2.0,
) -> list[ReferenceRecord]:
    """One :class:`ReferenceRecord` per frame (positions in Å), computed once and cached.

    Frames missing from the cache are computed in ``n_workers`` single-threaded worker
    processes (``n_workers=1``: in this process), with a progress bar (none when nothing is to
    be computed) and a summary line on stderr (``progress=False``: neither); each is stored as
    soon as it is done. ``labels`` are the frames' numbers in the user's data file (default
    0, 1, ...), named in every message.

    Each missing structure is claimed before it is computed and released after
    (``build.compute_missing``, the protocol of ``python -m nhamil.reference``): one that another
    live process (a shard, another training job) holds is not computed again but waited for,
    looked at every ``poll_s`` seconds, and read once its record appears; if that claim goes
    stale (its owner died on this host, or did not refresh it for ``stale_after_s`` seconds),
    this process takes it over and computes the structure.

    Raises, before computing anything: ``ValueError`` naming an element that the basis or the
    projection does not cover; ``CorruptCacheError`` (a ``DataFileError``) naming every cached
    file that is damaged or misplaced, unless ``rebuild_damaged`` (then a warning naming them,
    and they are recomputed and replaced). ``InputError`` naming the frame and the error of a
    structure whose failure another run recorded (before, or while this one waited for it).
    After computing: ``UnconvergedSCFError`` listing the frames whose SCF did not converge,
    unless ``allow_unconverged`` (then a warning, and the records come back with
    ``converged=False``). A full disk raises ``OSError(ENOSPC)`` naming the file; every record
    written before stays valid and is reused by the next build. An error of the computation
    itself propagates as it is; the structure's claim is released, so the next build retries it.

    The workers are started with ``spawn`` (a script that calls this with ``n_workers > 1``
    needs the usual ``if __name__ == "__main__":`` guard) and end when this process ends.
    """
    from nhamil.reference import build  # build.py builds on this module, so it is imported here

    labels = list(range(len(frames))) if labels is None else list(labels)
    if len(labels) != len(frames):
        raise InputError(f"{len(labels)} labels for {len(frames)} frames; give one frame number per frame")
    if not stale_after_s > 0 or not poll_s > 0:
        raise InputError(f"stale_after_s={stale_after_s} and poll_s={poll_s} must be > 0 (seconds)")
    folder = cache_folder(cache_dir, scf, projection)
    paths = [folder / f"{geometry_hash(a.numbers, a.positions)}.h5" for a in frames]
    wanted = {
        path: (ase.Atoms(a.numbers, a.positions), label) for path, a, label in zip(paths, frames, labels, strict=True)
    }
    check_elements([a.numbers for a, _ in wanted.values()], scf, projection)
    cached, damaged = _read_cache(wanted)
    if damaged and not rebuild_damaged:
        raise CorruptCacheError(_damaged_message(damaged))
    if damaged:
        warnings.warn(f"rebuilding {_damaged_message(damaged, advice=False)}", stacklevel=2)
    pending = [path for path in wanted if path not in cached]
    computed = build.compute_missing(
        wanted, pending, scf, projection, n_workers=n_workers, stale_after_s=stale_after_s, poll_s=poll_s,
        progress=progress,
    ).computed  # fmt: skip
    cached.update({path: read_record(path, *wanted[path]) for path in pending})
    records = [cached[path] for path in paths]
    unconverged = [label for label, record in zip(labels, records, strict=True) if not record.converged]
    if progress:
        by_others = len(pending) - len(computed)
        print(
            f"PySCF reference: {len(computed)} computed, {len(wanted) - len(pending)} reused from {folder}, "
            f"{f'{by_others} computed by other processes, ' if by_others else ''}{len(set(unconverged))} not converged",
            file=sys.stderr,
        )
    if unconverged and not allow_unconverged:
        raise UnconvergedSCFError(unconverged, folder)
    if unconverged:
        warnings.warn(
            f"using unconverged SCF results (flagged converged=False) for frame(s) {_listed(unconverged)}", stacklevel=2
        )
    return records


def _read_cache(
    wanted: dict[Path, tuple[ase.Atoms, int]],
) -> tuple[dict[Path, ReferenceRecord], list[tuple[Path, int, str]]]:
    """The sound cached records, and (path, frame label, problem) of each damaged or misplaced one."""
    cached, damaged = {}, []
    for path, (atoms, label) in wanted.items():
        if path.exists():
            problem = _record_problem(path, atoms)
            if isinstance(problem, ReferenceRecord):
                cached[path] = problem
            else:
                damaged.append((path, label, problem))
    return cached, damaged


def _damaged_message(damaged: list[tuple[Path, int, str]], advice: bool = True) -> str:
    """One line naming the first few damaged files (with frame and problem) and counting the rest."""
    named = "; ".join(f"{path} (frame {label} of the data file) is {problem}" for path, label, problem in damaged[:3])
    rest = f"; and {len(damaged) - 3} more" if len(damaged) > 3 else ""
    head = f"{len(damaged)} reference cache file(s) damaged or misplaced: {named}{rest}"
    return f"{head}; {REBUILD_ADVICE}" if advice else head


def check_elements(numbers: Sequence, scf: ScfSettings, projection: ProjectionSettings) -> None:
    """Raise ``ValueError`` naming an element of ``numbers`` (arrays of atomic numbers) that the
    basis, the projection settings, or the minimal shells within the basis do not cover."""
    elements = sorted({int(z) for array in numbers for z in np.asarray(array).tolist()})
    if elements:
        projection.check_elements(elements)
        projection.minimal_basis(AtomicBasis.from_pyscf(scf.basis, elements))


@contextmanager
def threads_limited(threads: int) -> Iterator[None]:
    """``threads`` BLAS/OpenMP threads in this process (PySCF's ``lib.num_threads`` and
    threadpoolctl's limits) inside the block; the previous numbers after it."""
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    before = lib.num_threads()
    with threadpool_limits(threads):
        lib.num_threads(threads)
        try:
            yield
        finally:
            lib.num_threads(before)


def worker_pool(n_workers: int, threads: int = 1) -> ProcessPoolExecutor:
    """``n_workers`` PySCF worker processes (``spawn``) of ``threads`` BLAS/OpenMP threads each,
    which end when this process ends."""
    return ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(), threads),
    )


class InlineExecutor:
    """``submit`` runs the job at once in this process, with ``threads`` threads: what
    :func:`worker_pool` does for one worker, without a process to start."""

    def __init__(self, threads: int):
        self._threads = threads_limited(threads)

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


def results_as_finished(pool, function, jobs: dict, in_flight: int) -> Iterator[tuple]:
    """``(key, function(*args))`` for each ``key: args`` of ``jobs``, in the order they finish,
    with at most ``in_flight`` jobs submitted to ``pool`` at once: an :class:`InlineExecutor`
    then runs one job per step, so a progress bar over the results moves as the work goes. A
    job's exception is raised when its turn comes; the results before it are already yielded."""
    queue, running = iter(jobs.items()), {}
    while True:
        while len(running) < in_flight and (job := next(queue, None)) is not None:
            running[pool.submit(function, *job[1])] = job[0]
        if not running:
            return
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            yield running.pop(future), future.result()


def _compute_and_store(
    atoms: ase.Atoms, scf: ScfSettings, projection: ProjectionSettings, path: Path
) -> ReferenceRecord:
    record = compute_reference(atoms, scf, projection)
    write_record(record, path)
    return record


def _worker_init(parent_pid: int, threads: int = 1) -> None:
    """Worker initializer: end with the parent process ``parent_pid``; ``threads`` threads."""
    die_with_parent(parent_pid)
    limit_threads(threads)


def limit_threads(threads: int) -> None:
    """``threads`` BLAS/OpenMP threads in this process, for PySCF (``lib.num_threads``) and the
    BLAS libraries (threadpoolctl): one per worker process when the workers share the cores."""
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    lib.num_threads(threads)
