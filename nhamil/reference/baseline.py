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
from functools import cache

import ase
import numpy as np
from tqdm.auto import tqdm

from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference.saph import lowdin_orthogonalize
from nhamil.reference.scf import build_molecule
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
    return fock[order], molecule.intor("int1e_ovlp")[order]


def orthogonal_baselines(
    name: str, frames: Sequence[ase.Atoms], basis: AtomicBasis, progress: bool = False
) -> list[np.ndarray]:
    """Löwdin-orthogonalized baselines ``S^-1/2 F_baseline S^-1/2``, one (n_ao, n_ao) array per
    frame: what a ``fock_orthogonal`` model with this baseline learns the difference to."""
    return [
        lowdin_orthogonalize(*baseline_fock(name, atoms, basis))
        for atoms in tqdm(frames, desc=f"{name} baseline", unit="structure", disable=not progress)
    ]


def ao_baselines(
    name: str, frames: Sequence[ase.Atoms], basis: AtomicBasis, progress: bool = False
) -> list[np.ndarray]:
    """AO baselines ``F_baseline`` (canonical order), one (n_ao, n_ao) array per frame: what a
    ``fock`` model with this baseline learns the difference to."""
    return [
        baseline_fock(name, atoms, basis)[0]
        for atoms in tqdm(frames, desc=f"{name} baseline", unit="structure", disable=not progress)
    ]


@cache
def _sap_fit(symbol: str) -> np.ndarray:
    """(n, 2) exponents and weights of the Gaussian fit of one element's atomic potential.
    Cached: parsing the fit file costs about 1 ms per element."""
    from pyscf.gto.basis import load

    return np.asarray(load(SAP_BASIS, symbol)[0][1:], dtype=float)
