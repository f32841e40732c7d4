"""Reference records and their on-disk cache.

Layout: ``<cache_dir>/<settings_hash>/settings.json`` (the ``ScfSettings`` and
``ProjectionSettings`` that made the folder, with ``FORMAT_VERSION`` and the PySCF version, human
readable) and one ``<geometry_hash>.h5`` per structure. ``settings_hash`` covers both settings
and ``FORMAT_VERSION``, so a changed setting never reads old results (the PySCF version is
recorded, not hashed: after an upgrade that changes results, use a new ``cache_dir``).
``geometry_hash`` covers the atomic numbers (int64) and positions (float64, Å) byte for byte.
Files are written to a temporary file in the same folder and then renamed, so a file present
is complete: an interrupted build keeps every finished structure and a rerun computes only the
missing ones.

HDF5 file (``FORMAT_VERSION`` 1), canonical AO order (``nhamil.orbitals``), float64:

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
(SCF iterations), ``wall_time`` (s, SCF only), ``n_core`` (dropped core orbitals).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import ase
import h5py
import numpy as np
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.orbitals import AtomicBasis
from nhamil.reference.saph import n_core_orbitals, projected_valence_hamiltonian
from nhamil.reference.scf import run_scf
from nhamil.reference.settings import ProjectionSettings, ScfSettings

#: Bumped whenever the meaning or layout of a cached file changes; part of the settings hash.
FORMAT_VERSION = 1

_ARRAYS = ("numbers", "positions", "fock", "overlap", "mo_energy", "mo_coeff", "mo_occ", "saph", "saph_energies")
_SCALARS = {"e_tot": float, "converged": bool, "n_cycles": int, "wall_time": float, "n_core": int}


class CorruptCacheError(RuntimeError):
    """A cache file that cannot be read; its message names the file to delete."""


class UnconvergedSCFError(RuntimeError):
    """Some structures did not converge; ``frames`` lists their indices."""

    def __init__(self, frames: list[int], folder: Path):
        self.frames = frames
        super().__init__(f"SCF did not converge for frame(s) {frames} (stored, flagged, in {folder}); raise "
                         "max_cycle, or pass allow_unconverged=True to use them flagged")


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
        numbers=np.asarray(atoms.numbers, dtype=np.int64), positions=np.asarray(atoms.positions, dtype=np.float64),
        fock=result.fock, overlap=result.overlap, mo_energy=result.mo_energy, mo_coeff=result.mo_coeff,
        mo_occ=result.mo_occ, saph=saph, saph_energies=energies, e_tot=result.e_tot, converged=result.converged,
        n_cycles=result.n_cycles, wall_time=result.wall_time, n_core=n_core_orbitals(atoms.numbers, projection))


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


def write_record(record: ReferenceRecord, path: Path) -> None:
    """Write ``record`` to ``path`` (HDF5, see the module docstring) atomically."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        for name in _ARRAYS:
            file.create_dataset(name, data=getattr(record, name))
        file.attrs.update({name: getattr(record, name) for name in _SCALARS}, format_version=FORMAT_VERSION)


def read_record(path: Path) -> ReferenceRecord:
    """Read one cached record; ``CorruptCacheError`` naming the file if it cannot be read."""
    try:
        with h5py.File(path, "r") as file:
            if file.attrs["format_version"] != FORMAT_VERSION:
                raise ValueError(f"format_version {file.attrs['format_version']}, expected {FORMAT_VERSION}")
            arrays = {name: file[name][()] for name in _ARRAYS}
            scalars = {name: kind(file.attrs[name]) for name, kind in _SCALARS.items()}
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise CorruptCacheError(f"cannot read reference cache file {path} ({err}); delete it and run again") from err
    return ReferenceRecord(**arrays, **scalars)


def cache_folder(cache_dir: str | Path, scf: ScfSettings, projection: ProjectionSettings) -> Path:
    """``<cache_dir>/<settings_hash>``, created with its ``settings.json`` if absent."""
    import pyscf

    folder = Path(cache_dir) / settings_hash(scf, projection)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "settings.json").exists():
        text = json.dumps({**settings_record(scf, projection), "pyscf_version": pyscf.__version__}, indent=2)
        with atomic_path(folder / "settings.json") as temporary:
            Path(temporary).write_text(text + "\n")
    return folder


def build_reference_set(frames: Sequence[ase.Atoms], scf: ScfSettings, projection: ProjectionSettings,
                        cache_dir: str | Path, n_workers: int = 2, progress: bool = True,
                        allow_unconverged: bool = False) -> list[ReferenceRecord]:
    """One :class:`ReferenceRecord` per frame (positions in Å), computed once and cached.

    Frames missing from the cache are computed in ``n_workers`` single-threaded worker
    processes (``n_workers=1``: in this process), with a progress bar; each is stored as soon as
    it is done. Raises ``ValueError`` naming an element that the basis or the projection does
    not cover, before computing anything; ``UnconvergedSCFError`` listing the frames whose SCF
    did not converge, unless ``allow_unconverged`` (then a warning, and the records come back
    with ``converged=False``).

    The workers are started with ``spawn``: a script that calls this with ``n_workers > 1``
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    folder = cache_folder(cache_dir, scf, projection)
    paths = [folder / f"{geometry_hash(a.numbers, a.positions)}.h5" for a in frames]
    missing = {path: ase.Atoms(a.numbers, a.positions) for path, a in zip(paths, frames) if not path.exists()}
    check_elements([a.numbers for a in missing.values()], scf, projection)
    computed = dict(_compute(missing, scf, projection, n_workers, progress))
    records = [computed[path] if path in computed else read_record(path) for path in paths]
    unconverged = [i for i, record in enumerate(records) if not record.converged]
    if unconverged and not allow_unconverged:
        raise UnconvergedSCFError(unconverged, folder)
    if unconverged:
        warnings.warn(f"using unconverged SCF results (flagged converged=False) for frame(s) {unconverged}",
                      stacklevel=2)
    return records


def check_elements(numbers: Sequence, scf: ScfSettings, projection: ProjectionSettings) -> None:
    """Raise ``ValueError`` naming an element of ``numbers`` (arrays of atomic numbers) that the
    basis, the projection settings, or the minimal shells within the basis do not cover."""
    elements = sorted({int(z) for array in numbers for z in np.asarray(array).tolist()})
    if elements:
        projection.check_elements(elements)
        projection.minimal_basis(AtomicBasis.from_pyscf(scf.basis, elements))


def _compute(jobs: dict[Path, ase.Atoms], scf: ScfSettings, projection: ProjectionSettings, n_workers: int,
             progress: bool) -> Iterator[tuple[Path, ReferenceRecord]]:
    """Compute and store every job, yielding (path, record) as each finishes."""
    n_workers = min(n_workers, len(jobs))
    results = _in_pool(jobs, scf, projection, n_workers) if n_workers > 1 else _in_process(jobs, scf, projection)
    yield from tqdm(results, total=len(jobs), desc="PySCF reference", unit="frame", disable=not progress)


def _in_process(jobs, scf, projection) -> Iterator[tuple[Path, ReferenceRecord]]:
    """Single-threaded, like a pool's workers: threaded PySCF sums in a varying order, and
    references rebuilt that way changed the water example's H MAE in its 4th digit."""
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    threads = lib.num_threads()
    with threadpool_limits(1):
        lib.num_threads(1)
        try:
            for path, atoms in jobs.items():
                yield path, _compute_and_store(atoms, scf, projection, path)
        finally:
            lib.num_threads(threads)


def _in_pool(jobs, scf, projection, n_workers: int) -> Iterator[tuple[Path, ReferenceRecord]]:
    pool = ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_threaded)
    try:
        futures = {pool.submit(_compute_and_store, atoms, scf, projection, path): path for path, atoms in jobs.items()}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _compute_and_store(atoms: ase.Atoms, scf: ScfSettings, projection: ProjectionSettings,
                       path: Path) -> ReferenceRecord:
    record = compute_reference(atoms, scf, projection)
    write_record(record, path)
    return record


def _single_threaded() -> None:
    """Worker initializer: one BLAS/OpenMP thread per process (the processes share the cores)."""
    from pyscf import lib
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    lib.num_threads(1)
