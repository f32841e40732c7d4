"""Cheap baseline Fock matrices that a model corrects (Δ-learning: F = F_baseline + ΔF_model).

``"sap"``: the core Hamiltonian plus a superposition of atomic potentials, ``h + V_SAP``
(Lehtola, JCTC 15, 1593 (2019)), in PySCF's Gaussian-fit form (Lehtola, Visscher and Engel,
JCP 152, 144105 (2020); fit ``SAP_BASIS``, PySCF's default). It needs no two-electron
integrals and no grid: about 8 ms for ethanol in def2-SVP on one core. It carries the large,
geometry-sensitive one-electron part and the screening of the nuclei, so the correction left
to learn is about ten times smaller than the Fock matrix itself (ethanol, RHF/def2-SVP).

Matrices are float64, Hartree, canonical AO order (``nhamil.orbitals``). Symmetry law: like
the Fock matrix, ``F(P R x) = P_ao D F(x) D^T P_ao^T`` for any proper or improper rotation R
and atom permutation P, exactly up to integral round-off (the fitted potentials are spherical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import ase
import numpy as np
from tqdm.auto import tqdm

from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference.saph import lowdin_orthogonalize
from nhamil.reference.scf import build_molecule, molecule_overlap
from nhamil.reference.settings import ScfSettings

BASELINES = ("sap",)
#: PySCF's default Gaussian fit of the atomic potentials (``SCF.sap_basis``).
SAP_BASIS = "sapgrasplarge"


def check_baseline(name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if it is not one of ``BASELINES``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def baseline_fock(name: str, atoms: ase.Atoms, basis: AtomicBasis) -> tuple[np.ndarray, np.ndarray]:
    """(n_ao, n_ao) baseline Fock matrix ``name`` of ``atoms`` (Å) in ``basis`` (a PySCF basis
    name), and the (n_ao, n_ao) AO overlap, both in canonical AO order."""
    from pyscf.scf.hf import get_hcore, make_sap

    check_baseline(name)
    electrons = int(atoms.numbers.sum())
    molecule = build_molecule(atoms, ScfSettings(basis=basis.name, spin=electrons % 2))
    potentials = {symbol: _sap_fit(symbol) for symbol in set(atoms.get_chemical_symbols())}
    fock = get_hcore(molecule) + make_sap(molecule, sap_basis=potentials)
    order = np.ix_(*2 * [pyscf_to_canonical(basis, atoms.numbers)])
    return fock[order], molecule_overlap(molecule, basis, atoms.numbers)


@dataclass(frozen=True)
class BaselineMatrices:
    """The baseline of some frames, as a model adds it: ``matrices`` in the target's form (one
    (n_ao, n_ao) float64 array per frame, Hartree; Löwdin-orthogonalized if ``orthogonal``) and
    the frames' AO ``overlaps`` (canonical order, computed with them), so that a caller that
    needs S too (orbital energies of an AO target, a start guess) does not ask PySCF again."""

    name: str
    orthogonal: bool
    matrices: list[np.ndarray]
    overlaps: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.matrices)


@dataclass(frozen=True)
class Baseline:
    """The baseline stage of a model: baseline ``name`` (one of :data:`BASELINES`) in ``basis``
    (an :class:`AtomicBasis` of a PySCF basis name), in the Löwdin-orthogonal form if
    ``orthogonal`` (a ``fock_orthogonal`` target), else the AO form. :meth:`compute` runs PySCF
    (CPU, one molecule at a time); its result can be handed to
    :meth:`nhamil.model.HamiltonianModel.predict` so that frames are never computed twice.
    Symmetry law: that of :func:`baseline_fock`."""

    name: str
    basis: AtomicBasis
    orthogonal: bool

    def __post_init__(self) -> None:
        check_baseline(self.name)

    def compute(self, frames: Sequence[ase.Atoms], progress: bool = False) -> BaselineMatrices:
        """Baseline matrices and AO overlaps of ``frames`` (Å), one PySCF molecule per frame."""
        matrices, overlaps = [], []
        for atoms in tqdm(frames, desc=f"{self.name} baseline", unit="structure", disable=not progress):
            fock, overlap = baseline_fock(self.name, atoms, self.basis)
            matrices.append(lowdin_orthogonalize(fock, overlap) if self.orthogonal else fock)
            overlaps.append(overlap)
        return BaselineMatrices(self.name, self.orthogonal, matrices, overlaps)


@cache
def _sap_fit(symbol: str) -> np.ndarray:
    """(n, 2) exponents and weights of the Gaussian fit of one element's atomic potential.
    Cached: parsing the fit file costs about 1 ms per element."""
    from pyscf.gto.basis import load

    return np.asarray(load(SAP_BASIS, symbol)[0][1:], dtype=float)
