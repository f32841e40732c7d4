"""The Hartree term of a full Fock model: the Coulomb potential of the charge a molecule moves.

Across chemical space a local model misses the Hartree potential J[P - P_minao] of the charge
that moves away from the atoms' minimal-basis guess P_minao: no feature inside the cutoff sees
where the charge went (benchmarks/RESULTS.md, "What the on-site shift is"). A model with a
Hartree term learns what is left,

    R = F_ref - B - J[P_ref - P_minao]        (B the baseline, P_ref the density of F_ref),

and predicts the F that solves ``F = B + R + J[P(F) - P_minao]``, with P(F) = 2 C_occ C_occ^T
of F's lowest orbitals. The loop builds only J (no exchange, no grid), with DIIS on the
Löwdin-basis commutator ``F P - P F``. The reference's own R gives back F_ref: it is the
loop's fixed point. J is PySCF's at the references' level, density-fitted as they are; the
fit's three-index integrals are built once per molecule. Measured on the SMILES molecules at
DF-RHF/def2-SVP (``benchmarks/hartree_remainder.py``): a median of 15 J builds per molecule.

Symmetry law: ``F(P R x) = P_ao D F(x) D^T P_ao^T`` for proper and improper rotations R and
atom permutations P when B and R obey it. J and P_minao obey it exactly (there is no grid),
and the DIIS coefficients are invariants. Matrices are float64, Hartree, canonical AO order,
in the target's form: Löwdin-orthogonal if ``orthogonal``, else AO. Closed shells only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import ase
import numpy as np

from nhamil.errors import InputError
from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference.saph import overlap_power
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.reference.settings import ScfSettings


class HartreeNotConverged(InputError):
    """The self-consistent Hartree loop of one structure did not converge; the message names it."""


@dataclass(frozen=True)
class HartreeSettings:
    """The self-consistent loop: at most ``max_cycle`` J builds, until the largest element of the
    Löwdin-basis commutator ``F P - P F`` is below ``tolerance`` (Hartree), with ``diis_space``
    DIIS vectors."""

    max_cycle: int = 50
    tolerance: float = 1e-8
    diis_space: int = 8

    def __post_init__(self) -> None:
        if self.max_cycle < 1:
            raise InputError(f"hartree.max_cycle={self.max_cycle} must be at least 1")
        if not (np.isfinite(self.tolerance) and self.tolerance > 0):
            raise InputError(f"hartree.tolerance={self.tolerance} Ha must be a positive number")
        if self.diis_space < 1:
            raise InputError(f"hartree.diis_space={self.diis_space} must be at least 1")

    def to_dict(self) -> dict:
        return {"max_cycle": self.max_cycle, "tolerance": self.tolerance, "diis_space": self.diis_space}


@dataclass(frozen=True)
class HartreeSolution:
    """One converged loop: ``fock`` (n_ao, n_ao) in the target's form, after ``cycles`` J builds."""

    fock: np.ndarray
    cycles: int


class _Coulomb:
    """J[P] of one molecule (Å) at the level ``scf``, canonical AO order of ``basis``.
    ``reuse_fit``: build the density fit's three-index integrals once (2.3 s for 26 atoms; a J
    is then 0.02 s, against 1.4 s without them), for a molecule whose J is built many times."""

    def __init__(self, atoms: ase.Atoms, basis: AtomicBasis, scf: ScfSettings, reuse_fit: bool):
        self._solver = make_solver(build_molecule(atoms, replace(scf, spin=0)), scf)
        if reuse_fit and scf.density_fit:
            self._solver.with_df.build()
        self._order = np.ix_(*2 * [pyscf_to_canonical(basis, atoms.numbers)])
        self._inverse = np.ix_(*2 * [np.argsort(pyscf_to_canonical(basis, atoms.numbers))])

    def __call__(self, density: np.ndarray) -> np.ndarray:
        return np.asarray(self._solver.get_j(dm=density[self._inverse]), dtype=np.float64)[self._order]

    def minao_density(self) -> np.ndarray:
        """PySCF's minimal-basis guess density (n_ao, n_ao), the one the ``minao`` baseline uses."""
        return np.asarray(self._solver.get_init_guess(key="minao"), dtype=np.float64)[self._order]


@dataclass(frozen=True)
class HartreeTerm:
    """The Hartree term of a model whose target is a full Fock matrix in ``basis`` at the level
    ``scf``, in the Löwdin-orthogonal form if ``orthogonal``; ``settings``: its loop."""

    basis: AtomicBasis
    scf: ScfSettings
    orthogonal: bool
    settings: HartreeSettings = HartreeSettings()

    def of_reference(self, atoms: ase.Atoms, fock: np.ndarray, overlap: np.ndarray) -> np.ndarray:
        """(n_ao, n_ao) J[P_ref - P_minao] in the target's form, with P_ref the closed-shell
        density of the converged ``fock`` (n_ao, n_ao, the target's form) of ``atoms``, whose
        AO ``overlap`` is (n_ao, n_ao): what a model with a Hartree term does not learn."""
        n_occupied = self._n_occupied(atoms)
        metric = _LowdinMetric(overlap)
        fock_orthogonal = fock if self.orthogonal else metric.by_inverse_sqrt(fock)
        coulomb = _Coulomb(atoms, self.basis, self.scf, reuse_fit=False)
        density = metric.by_inverse_sqrt(_orthogonal_density(fock_orthogonal, n_occupied))
        hartree = coulomb(density - coulomb.minao_density())
        return metric.by_inverse_sqrt(hartree) if self.orthogonal else hartree

    def solve(self, fixed: np.ndarray, atoms: ase.Atoms, overlap: np.ndarray, label: str = "") -> HartreeSolution:
        """The F = fixed + J[P(F) - P_minao] of ``atoms`` (Å) with AO ``overlap`` (n_ao, n_ao), in
        the target's form, ``fixed`` (n_ao, n_ao) being the baseline plus the model's R; started
        from P_minao. ``HartreeNotConverged`` naming the structure (``label``) and its residual
        when ``settings.max_cycle`` J builds do not reach ``settings.tolerance``."""
        from pyscf.lib.diis import DIIS

        n_occupied = self._n_occupied(atoms)
        metric = _LowdinMetric(overlap)
        fixed_orthogonal = fixed if self.orthogonal else metric.by_inverse_sqrt(fixed)
        coulomb = _Coulomb(atoms, self.basis, self.scf, reuse_fit=True)
        start = coulomb.minao_density()
        diis = DIIS(incore=True)
        diis.space, diis.verbose = self.settings.diis_space, 0
        density_orthogonal = metric.by_sqrt(start)
        for cycle in range(1, self.settings.max_cycle + 1):
            hartree = metric.by_inverse_sqrt(coulomb(metric.by_inverse_sqrt(density_orthogonal) - start))
            fock = fixed_orthogonal + hartree
            commutator = fock @ density_orthogonal - density_orthogonal @ fock
            residual = float(np.abs(commutator).max())
            if residual < self.settings.tolerance:
                return HartreeSolution(fock if self.orthogonal else metric.by_sqrt(fock), cycle)
            density_orthogonal = _orthogonal_density(diis.update(fock, xerr=commutator), n_occupied)
        raise HartreeNotConverged(
            f"the Hartree loop of structure {label or atoms.get_chemical_formula()} did not converge in "
            f"{self.settings.max_cycle} J builds (commutator {residual:.1e} Ha > {self.settings.tolerance:.0e}): "
            "raise hartree.max_cycle, or check that the structure lies in the training domain"
        )

    def _n_occupied(self, atoms: ase.Atoms) -> int:
        electrons = int(atoms.numbers.sum()) - self.scf.charge
        if electrons % 2 or self.scf.spin:
            raise InputError(
                f"the Hartree term needs a closed shell; {atoms.get_chemical_formula()} has {electrons} electrons"
            )
        return electrons // 2


class _LowdinMetric:
    """Löwdin's change of basis for one AO overlap S (n, n). An AO operator M (a Fock matrix, a
    potential) becomes ``S^-1/2 M S^-1/2`` in the Löwdin basis and an AO density P becomes
    ``S^1/2 P S^1/2``, so :meth:`by_inverse_sqrt` takes operators there and densities back, and
    :meth:`by_sqrt` the converse."""

    def __init__(self, overlap: np.ndarray):
        self._inverse_sqrt = overlap_power(overlap, -0.5)
        self._sqrt = overlap_power(overlap, 0.5)

    def by_inverse_sqrt(self, matrix: np.ndarray) -> np.ndarray:
        """``S^-1/2 M S^-1/2`` of an (n, n) matrix."""
        return self._inverse_sqrt @ matrix @ self._inverse_sqrt

    def by_sqrt(self, matrix: np.ndarray) -> np.ndarray:
        """``S^1/2 M S^1/2`` of an (n, n) matrix."""
        return self._sqrt @ matrix @ self._sqrt


def _orthogonal_density(fock: np.ndarray, n_occupied: int) -> np.ndarray:
    """(n, n) closed-shell density 2 V_occ V_occ^T of the lowest ``n_occupied`` eigenvectors of a
    Löwdin-basis ``fock`` (n, n)."""
    occupied = np.linalg.eigh(fock)[1][:, :n_occupied]
    return 2.0 * occupied @ occupied.T
