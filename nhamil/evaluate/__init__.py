"""Evaluation of predicted Hamiltonians: matrix and orbital-energy errors, plots."""

from .metrics import eigenvalue_errors, hamiltonian_errors, orbital_energies, prediction_errors
from .plots import orbital_energy_parity

__all__ = ["eigenvalue_errors", "hamiltonian_errors", "orbital_energies", "orbital_energy_parity", "prediction_errors"]
