"""1,2-dichloroethane along an ab initio Langevin trajectory, with dipoles and polarizabilities.

The trajectory runs with ASE's Langevin integrator on PySCF forces; every step is one frame and
carries the PySCF dipole (Debye, ``mf.dip_moment``, about the origin of the Å frame: the molecule
is neutral, so the origin does not matter) and the static dipole polarizability (atomic units,
bohr^3, analytic CPHF from ``pyscf-properties``' ``pyscf.prop.polarizability``).

Cache: ``<cache_dir>/<settings_hash>/chunk_<k>.h5``, each holding ``chunk_size`` consecutive
frames, written atomically. A chunk starts from the last positions and velocities of the one
before and seeds its own Langevin noise from (seed, k), so an interrupted build resumes where
it stopped and gives the same frames as an uninterrupted one. ``n_frames`` is not hashed: asking
for more frames extends the trajectory.

Laws (checked in the tests): dipole(R x) = R dipole(x) and alpha(R x) = R alpha(x) R^T.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ase
import h5py
import numpy as np
from tqdm.auto import tqdm

from nhamil.atomic import atomic_path
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.reference.settings import ScfSettings

#: Bumped whenever the meaning or layout of a chunk changes; part of the settings hash.
FORMAT_VERSION = 1

#: C-C 1.53, C-Cl 1.79, C-H 1.09 Å, tetrahedral angles.
_BONDS = {"C": 1.53, "Cl": 1.79, "H": 1.09}


@dataclass(frozen=True, kw_only=True)
class TrajectorySettings:
    """timestep_fs: MD step, fs; temperature_K: Langevin bath; friction: 1/fs; chunk_size:
    frames per cache file; seed: initial velocities and noise; scf: the level of theory
    (default RHF/STO-3G, about 1 s per frame on one core; the paper's is
    ``ScfSettings(method="rks", xc="b3lyp", basis="aug-cc-pvtz")``)."""

    timestep_fs: float = 1.0
    temperature_K: float = 1500.0
    friction: float = 0.01
    chunk_size: int = 100
    seed: int = 0
    scf: ScfSettings = field(default_factory=lambda: ScfSettings(method="rhf", basis="sto-3g", conv_tol=1e-9))

    def to_dict(self) -> dict:
        return {**asdict(self), "scf": self.scf.to_dict()}


@dataclass(frozen=True)
class Trajectory:
    """numbers (n_atoms,); positions (n_frames, n_atoms, 3) Å; dipoles (n_frames, 3) Debye;
    polarizabilities (n_frames, 3, 3) bohr^3; energies (n_frames,) Hartree."""

    numbers: np.ndarray
    positions: np.ndarray
    dipoles: np.ndarray
    polarizabilities: np.ndarray
    energies: np.ndarray

    def frames(self) -> list[ase.Atoms]:
        return [ase.Atoms(self.numbers, p) for p in self.positions]


def dichloroethane(dihedral_deg: float = 180.0) -> ase.Atoms:
    """ClCH2-CH2Cl with the C-C bond on z and Cl-C-C-Cl dihedral ``dihedral_deg`` (180: anti)."""
    half = _BONDS["C"] / 2
    symbols, positions = ["C", "C"], [[0.0, 0.0, half], [0.0, 0.0, -half]]
    tilt = np.radians(180.0 - 109.47)
    for sign, phase in ((1, 0.0), (-1, dihedral_deg)):
        for symbol, phi in (("Cl", 0.0), ("H", 120.0), ("H", 240.0)):
            angle = np.radians(phi + phase)
            direction = np.array([np.sin(tilt) * np.cos(angle), np.sin(tilt) * np.sin(angle), sign * np.cos(tilt)])
            symbols.append(symbol)
            positions.append(np.array([0.0, 0.0, sign * half]) + _BONDS[symbol] * direction)
    return ase.Atoms(symbols, positions)


def chlorine_dihedral(positions: np.ndarray) -> np.ndarray:
    """(m,) Cl-C-C-Cl dihedral angles, degrees in (-180, 180], of positions (m, 8, 3) Å in the
    atom order of :func:`dichloroethane` (|angle| > 120: anti, else gauche)."""
    cl1, c1, c2, cl2 = (positions[:, k] for k in (2, 0, 1, 5))
    bond = c2 - c1
    first, second = np.cross(c1 - cl1, bond), np.cross(bond, cl2 - c2)
    sine = np.einsum("mi,mi->m", np.cross(first, second), bond / np.linalg.norm(bond, axis=1, keepdims=True))
    return np.degrees(np.arctan2(sine, np.einsum("mi,mi->m", first, second)))


def dipole_and_polarizability(solver) -> tuple[np.ndarray, np.ndarray]:
    """(3,) dipole, Debye, and (3, 3) static polarizability, bohr^3, of a converged restricted
    PySCF solver."""
    from pyscf.prop import polarizability

    module = polarizability.rks if hasattr(solver, "xc") else polarizability.rhf
    dipole = solver.dip_moment(unit="Debye", verbose=0)
    return np.asarray(dipole, dtype=np.float64), np.asarray(module.Polarizability(solver).polarizability())


def settings_hash(settings: TrajectorySettings) -> str:
    """16 hex digits identifying the settings and ``FORMAT_VERSION``."""
    text = json.dumps({"format_version": FORMAT_VERSION, **settings.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_trajectory(
    settings: TrajectorySettings, n_frames: int, cache_dir: str | Path, progress: bool = True
) -> Trajectory:
    """The first ``n_frames`` frames of the trajectory, computing and caching missing chunks
    (one process; set ``OPENBLAS_NUM_THREADS`` for PySCF's threads)."""
    if n_frames < 1:
        raise ValueError(f"n_frames must be positive, got {n_frames}")
    folder = _cache_folder(cache_dir, settings)
    n_chunks = -(-n_frames // settings.chunk_size)
    missing = [k for k in range(n_chunks) if not _chunk_path(folder, k).exists()]
    with tqdm(
        total=len(missing) * settings.chunk_size,
        desc="DCE ab initio MD",
        unit="frame",
        disable=not progress or not missing,
    ) as bar:
        for k in range(n_chunks):
            if not _chunk_path(folder, k).exists():
                _run_chunk(settings, folder, k, bar)
    chunks = [_read_chunk(_chunk_path(folder, k)) for k in range(n_chunks)]
    return Trajectory(
        chunks[0]["numbers"],
        *(
            np.concatenate([c[name] for c in chunks])[:n_frames]
            for name in ("positions", "dipoles", "polarizabilities", "energies")
        ),
    )


def _cache_folder(cache_dir: str | Path, settings: TrajectorySettings) -> Path:
    folder = Path(cache_dir) / settings_hash(settings)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "settings.json").exists():
        with atomic_path(folder / "settings.json") as temporary:
            temporary.write_text(json.dumps({"format_version": FORMAT_VERSION, **settings.to_dict()}, indent=2) + "\n")
    return folder


def _chunk_path(folder: Path, k: int) -> Path:
    return folder / f"chunk_{k:05d}.h5"


def _run_chunk(settings: TrajectorySettings, folder: Path, k: int, bar) -> None:
    """Integrate ``chunk_size`` steps from the end of chunk k - 1 (or the anti conformer with
    Maxwell-Boltzmann velocities) and store them."""
    from ase import units
    from ase.md.langevin import Langevin

    atoms = _chunk_start(settings, folder, k)
    calculator = _PySCFCalculator(settings.scf)
    atoms.calc = calculator
    dynamics = Langevin(
        atoms,
        settings.timestep_fs * units.fs,
        temperature_K=settings.temperature_K,
        friction=settings.friction / units.fs,
        rng=np.random.RandomState([settings.seed, k]),
    )
    records = {name: [] for name in ("positions", "velocities", "dipoles", "polarizabilities", "energies")}
    for _ in range(settings.chunk_size):
        dynamics.run(1)
        calculator.calculate(atoms)
        for name, value in (
            ("positions", atoms.positions),
            ("velocities", atoms.get_velocities()),
            *calculator.properties.items(),
        ):
            records[name].append(np.array(value, dtype=np.float64))
        bar.update()
    _write_chunk(_chunk_path(folder, k), atoms.numbers, {name: np.stack(v) for name, v in records.items()})


def _chunk_start(settings: TrajectorySettings, folder: Path, k: int) -> ase.Atoms:
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    if k > 0:
        previous = _read_chunk(_chunk_path(folder, k - 1))
        atoms = ase.Atoms(previous["numbers"], previous["positions"][-1])
        atoms.set_velocities(previous["velocities"][-1])
        return atoms
    atoms = dichloroethane()
    MaxwellBoltzmannDistribution(
        atoms, temperature_K=settings.temperature_K, rng=np.random.RandomState([settings.seed, 2**31 - 1])
    )
    Stationary(atoms)
    return atoms


class _PySCFCalculator:
    """Energy (eV) and forces (eV/Å) for ASE from a PySCF single point, keeping the properties of
    the last geometry (``properties``: dipoles, polarizabilities, energies in Hartree) and the
    last density as the next start guess."""

    def __init__(self, scf: ScfSettings):
        self.scf = scf
        self.density = None
        self.positions = None
        self.properties = {}
        self.forces = None

    def get_potential_energy(self, atoms: ase.Atoms, force_consistent: bool = False) -> float:
        from ase import units

        self.calculate(atoms)
        return self.properties["energies"] * units.Hartree

    def get_forces(self, atoms: ase.Atoms) -> np.ndarray:
        self.calculate(atoms)
        return self.forces.copy()

    def calculate(self, atoms: ase.Atoms) -> None:
        """Solve ``atoms`` unless it is the geometry solved last."""
        from ase import units

        if self.positions is not None and np.array_equal(self.positions, atoms.positions):
            return
        solver = make_solver(build_molecule(atoms, self.scf), self.scf)
        energy = solver.kernel(dm0=self.density)
        if not solver.converged:
            raise RuntimeError(f"SCF did not converge along the trajectory (max_cycle {self.scf.max_cycle})")
        gradient = solver.nuc_grad_method().kernel()
        dipole, alpha = dipole_and_polarizability(solver)
        self.density, self.positions = solver.make_rdm1(), atoms.positions.copy()
        self.forces = -gradient * units.Hartree / units.Bohr
        self.properties = {"dipoles": dipole, "polarizabilities": alpha, "energies": float(energy)}


def _write_chunk(path: Path, numbers: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as file:
        file.create_dataset("numbers", data=np.asarray(numbers, dtype=np.int64))
        for name, value in arrays.items():
            file.create_dataset(name, data=value)
        file.attrs["format_version"] = FORMAT_VERSION


def _read_chunk(path: Path) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as file:
            return {name: file[name][()] for name in file}
    except OSError as err:
        raise RuntimeError(f"cannot read trajectory chunk {path} ({err}); delete it and run again") from err
