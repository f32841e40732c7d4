"""Baseline matrices cached per structure, computed once in parallel and reused by every run.

A ``"minao"`` baseline costs one Fock build per structure (0.5-1.1 s for ethanol at PBE/def2-SVP
on one core): as much as a learning curve's fit, again in every run and on every rank, unless
it is kept. :func:`cached_baselines` keeps it beside the references of the same cache directory:

``<cache_dir>/baselines/<baseline_hash>/<geometry_hash>.h5``, where ``baseline_hash`` covers the
baseline's name, its basis, the level of theory it is built at (``ScfSettings``), the SAP fit
and ``FORMAT_VERSION``, and ``geometry_hash`` is the reference store's (atomic numbers and
positions, byte for byte). Each file holds ``numbers`` (int64), ``positions`` (Å), the AO
``fock`` baseline and the AO ``overlap`` (canonical AO order, Hartree, float64) and a sha256 of
all four; it is written to a temporary file and renamed, so a file present is complete and an
interrupted run keeps what it finished. A file that is damaged or holds another structure is
reported by name and computed again, never read as a number.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import ase
import h5py
import numpy as np
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.reference.baseline import SAP_BASIS, Baseline, BaselineMatrices, baseline_fock
from nhamil.reference.saph import lowdin_orthogonalize
from nhamil.reference.settings import ScfSettings
from nhamil.reference.store import InlineExecutor, geometry_hash, results_as_finished, worker_pool

log = logging.getLogger(__name__)

#: Bumped whenever the meaning or layout of a cached baseline changes; part of the baseline hash.
FORMAT_VERSION = 1

_ARRAYS = ("numbers", "positions", "fock", "overlap")


def baseline_folder(cache_dir: str | Path, stage: Baseline) -> Path:
    """``<cache_dir>/baselines/<baseline_hash>``, created with a ``settings.json`` naming what it holds."""
    record = _settings_record(stage)
    text = json.dumps(record, sort_keys=True)
    folder = Path(cache_dir) / "baselines" / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "settings.json").exists():
        with atomic_path(folder / "settings.json") as temporary:
            Path(temporary).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def cached_baselines(
    stage: Baseline,
    frames: Sequence[ase.Atoms],
    cache_dir: str | Path,
    n_workers: int = 1,
    progress: bool = False,
) -> BaselineMatrices:
    """The baseline of ``frames`` (Å) in ``stage``'s form, as :meth:`Baseline.compute` gives it,
    read from ``cache_dir`` where a file exists and computed (by ``n_workers`` PySCF processes,
    with a progress bar) and stored where not. Equal to :meth:`Baseline.compute` to PySCF's
    round-off (two calls of it differ by ~1e-15 Ha); read back bit for bit."""
    folder = baseline_folder(cache_dir, stage)
    paths = [folder / f"{geometry_hash(atoms.numbers, atoms.positions)}.h5" for atoms in frames]
    stored = {path: _read(path, atoms) for path, atoms in zip(paths, frames, strict=True)}
    missing = {path: atoms for path, atoms in zip(paths, frames, strict=True) if stored[path] is None}
    stored.update(_compute_missing(stage, missing, n_workers, progress))
    pairs = [stored[path] for path in paths]
    matrices = [lowdin_orthogonalize(fock, overlap) if stage.orthogonal else fock for fock, overlap in pairs]
    return BaselineMatrices(stage.name, stage.orthogonal, matrices, [overlap for _, overlap in pairs])


def _settings_record(stage: Baseline) -> dict:
    scf = stage.scf or ScfSettings(basis=stage.basis.name)
    return {
        "format_version": FORMAT_VERSION,
        "baseline": stage.name,
        "basis": stage.basis.name.lower(),
        "scf": scf.to_dict(),
        "sap_basis": SAP_BASIS,
    }


def _compute_missing(
    stage: Baseline, missing: dict[Path, ase.Atoms], n_workers: int, progress: bool
) -> dict[Path, tuple[np.ndarray, np.ndarray]]:
    """Compute and store the baselines of ``missing`` ({path: structure}), in parallel if ``n_workers`` > 1."""
    if not missing:
        return {}
    bar = tqdm(total=len(missing), desc=f"{stage.name} baseline", unit="structure", disable=not progress)
    n_workers = min(n_workers, len(missing))
    with bar, worker_pool(n_workers) if n_workers > 1 else InlineExecutor(threads=1) as pool:
        jobs = {path: (stage, atoms, path) for path, atoms in missing.items()}
        done = {}
        for path, matrices in results_as_finished(pool, _compute_and_store, jobs, in_flight=n_workers):
            done[path] = matrices
            bar.update()
    return done


def _compute_and_store(stage: Baseline, atoms: ase.Atoms, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The AO baseline and overlap of ``atoms``, written to ``path`` (atomically, with its checksum)."""
    fock, overlap = baseline_fock(stage.name, atoms, stage.basis, stage.scf)
    arrays = {
        "numbers": np.asarray(atoms.numbers, dtype=np.int64),
        "positions": np.asarray(atoms.positions, dtype=np.float64),
        "fock": fock,
        "overlap": overlap,
    }
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        for name, array in arrays.items():
            file.create_dataset(name, data=array)
        file.attrs.update(format_version=FORMAT_VERSION, sha256=_checksum(arrays))
    return fock, overlap


def _read(path: Path, atoms: ase.Atoms) -> tuple[np.ndarray, np.ndarray] | None:
    """(fock, overlap) stored at ``path`` for ``atoms``; None if absent, or (with a warning naming
    the file) damaged or of another structure, so that it is computed again."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as file:
            arrays = {name: file[name][()] for name in _ARRAYS}
            valid = file.attrs["format_version"] == FORMAT_VERSION and str(file.attrs["sha256"]) == _checksum(arrays)
    except (OSError, KeyError, ValueError, TypeError):
        valid = False
    if not valid:
        log.warning(f"baseline cache file {path} is damaged; computing it again")
        return None
    if not (
        np.array_equal(arrays["numbers"], np.asarray(atoms.numbers, dtype=np.int64))
        and np.array_equal(arrays["positions"], np.asarray(atoms.positions, dtype=np.float64))
    ):
        log.warning(f"baseline cache file {path} holds another structure than the one asked for; computing it again")
        return None
    return arrays["fock"], arrays["overlap"]


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 hex digest of the datasets (name, dtype, shape, bytes, in ``_ARRAYS`` order)."""
    digest = hashlib.sha256()
    for name in _ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
