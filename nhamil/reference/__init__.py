"""PySCF reference data: SCF matrices in canonical AO order and the projected (SAPH) Hamiltonian.

``read_frames`` -> ``run_scf`` -> ``projected_valence_hamiltonian``, or all at once, cached on
disk and in parallel, with ``build_reference_set``. Positions in Å, matrices and energies in
Hartree. ``python -m nhamil.reference`` builds the cache as a command of its own, in shards that
may run at once (``command.py``, ``build.py``, ``claims.py``).
"""

from nhamil.reference.frames import read_frames
from nhamil.reference.saph import lowdin_orthogonalize, projected_valence_hamiltonian
from nhamil.reference.scf import ScfResult, run_scf
from nhamil.reference.settings import ProjectionSettings, ScfSettings
from nhamil.reference.store import (
    FORMAT_VERSION,
    CorruptCacheError,
    ReferenceRecord,
    UnconvergedSCFError,
    build_reference_set,
    compute_reference,
    read_record,
)

__all__ = [
    "FORMAT_VERSION",
    "CorruptCacheError",
    "ProjectionSettings",
    "ReferenceRecord",
    "ScfResult",
    "ScfSettings",
    "UnconvergedSCFError",
    "build_reference_set",
    "compute_reference",
    "lowdin_orthogonalize",
    "projected_valence_hamiltonian",
    "read_frames",
    "read_record",
    "run_scf",
]
