"""Evaluation of predicted Hamiltonians: matrix and orbital-energy errors, the physics of the
predicted orbitals (frontier levels, density, dipole, orbital similarity, intruder states),
plots. Command line: ``python -m nhamil.evaluate RUN_DIR``."""

from .electronic import (
    Orbitals,
    ao_fock,
    coefficient_cosines,
    density_matrix,
    dipole_moment,
    occupied_similarity,
    orbitals_from_orthogonal,
    orbitals_of,
    overlap_matrix,
    solve_orbitals,
    spurious_states,
    to_pyscf_order,
)
from .metrics import (
    eigenvalue_errors,
    errors_by_size,
    fock_errors,
    hamiltonian_errors,
    orbital_energies,
    prediction_errors,
    target_errors,
)
from .physics import (
    StructureEvaluation,
    block_type_errors,
    evaluate_structure,
    onsite_shift_errors,
    per_state_mae,
    summarize,
)
from .plots import dipole_parity, energy_error_figure, energy_parity, frontier_parity, orbital_energy_parity
from .run import evaluate_predictions, load_run, scf_settings, write_report

__all__ = [
    "Orbitals",
    "StructureEvaluation",
    "ao_fock",
    "block_type_errors",
    "coefficient_cosines",
    "density_matrix",
    "dipole_moment",
    "dipole_parity",
    "eigenvalue_errors",
    "energy_error_figure",
    "energy_parity",
    "errors_by_size",
    "evaluate_predictions",
    "evaluate_structure",
    "fock_errors",
    "frontier_parity",
    "hamiltonian_errors",
    "load_run",
    "occupied_similarity",
    "orbital_energies",
    "orbital_energy_parity",
    "orbitals_from_orthogonal",
    "orbitals_of",
    "overlap_matrix",
    "onsite_shift_errors",
    "per_state_mae",
    "prediction_errors",
    "scf_settings",
    "solve_orbitals",
    "spurious_states",
    "summarize",
    "target_errors",
    "to_pyscf_order",
    "write_report",
]
