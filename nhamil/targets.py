"""What the model learns: orthogonal matrices made from reference records.

- ``saph``: the projected valence Hamiltonian (minimal basis, orthogonal).
- ``fock_orthogonal``: the Löwdin-orthogonalized full Fock matrix S^-1/2 F S^-1/2.

Both are symmetric, in Hartree, in canonical AO order, and rotate as D M D^T with the Wigner
matrix of their basis. Their eigenvalues are orbital energies (a subset for the SAPH).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .orbitals import AtomicBasis
from .reference import ProjectionSettings, ReferenceRecord, lowdin_orthogonalize

TARGETS = ("saph", "fock_orthogonal")


@dataclass(frozen=True)
class TargetSet:
    """Target matrices of a list of structures.

    name: one of ``TARGETS``; basis: the basis the matrices are written in; matrices: one
    (n_ao, n_ao) float64 array per structure, Hartree; n_occupied: occupied states among each
    matrix's eigenvalues.
    """

    name: str
    basis: AtomicBasis
    matrices: list[np.ndarray]
    n_occupied: list[int]

    def subset(self, indices: Sequence[int]) -> TargetSet:
        return TargetSet(self.name, self.basis, [self.matrices[i] for i in indices],
                         [self.n_occupied[i] for i in indices])


def make_targets(records: Sequence[ReferenceRecord], name: str, basis: AtomicBasis,
                 projection: ProjectionSettings) -> TargetSet:
    """Targets ``name`` of ``records`` computed in the full ``basis`` (the SCF basis)."""
    if name == "saph":
        return TargetSet(name, projection.minimal_basis(basis), [r.saph for r in records],
                         [r.saph_n_occupied for r in records])
    if name == "fock_orthogonal":
        return TargetSet(name, basis, [lowdin_orthogonalize(r.fock, r.overlap) for r in records],
                         [r.n_occupied for r in records])
    raise ValueError(f"unknown target {name!r}; choose one of {TARGETS}")
