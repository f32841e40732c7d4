"""Baseline Fock matrices that a model corrects (Δ-learning: F = F_baseline + ΔF_model).

``"sap"`` (the experiments' default: cheap): the core Hamiltonian plus a superposition of atomic
potentials, ``h + V_SAP`` (Lehtola, JCTC 15, 1593 (2019)), in PySCF's Gaussian-fit form (Lehtola,
Visscher and Engel, JCP 152, 144105 (2020); fit ``SAP_BASIS``, PySCF's default). It needs no two-electron
integrals and no grid: about 8 ms for ethanol in def2-SVP on one core. It carries the large,
geometry-sensitive one-electron part and the screening of the nuclei, so the correction left
to learn is about ten times smaller than the Fock matrix itself (ethanol, RHF/def2-SVP).

``"minao"``: the Fock matrix of the model's own level of theory (method, functional, density
fitting: the target's ``ScfSettings``) built once from PySCF's minimal-basis guess density,
``F[D_minao]``: one Fock build, no SCF cycle. Measured on held-out ethanol frames 800-802 at
PBE/def2-SVP on one core: MAE from the converged AO Fock matrix 6.1 mHa against SAP's 49 mHa
(8x closer), at 0.5-1.1 s per frame (the DFT grid and one J/K/XC build) against SAP's 8 ms and
the SCF's 4 s. Choose it where accuracy matters more than the cost of a prediction.

Matrices are float64, Hartree, canonical AO order (``nhamil.orbitals``). Symmetry law: like
the Fock matrix, ``F(P R x) = P_ao D F(x) D^T P_ao^T`` for any proper or improper rotation R
and atom permutation P, exactly up to integral round-off (the fitted potentials are spherical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache

import ase
import numpy as np
from tqdm.auto import tqdm

from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.reference.fock_build import fock_of_density
from nhamil.reference.saph import lowdin_orthogonalize
from nhamil.reference.scf import build_molecule, molecule_overlap
from nhamil.reference.settings import ScfSettings

BASELINES = ("sap", "minao")
#: PySCF's default Gaussian fit of the atomic potentials (``SCF.sap_basis``).
SAP_BASIS = "sapgrasplarge"


def check_baseline(name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if it is not one of ``BASELINES``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def baseline_fock(
    name: str, atoms: ase.Atoms, basis: AtomicBasis, scf: ScfSettings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(n_ao, n_ao) baseline Fock matrix ``name`` of ``atoms`` (Å) in ``basis`` (a PySCF basis
    name), and the (n_ao, n_ao) AO overlap, both in canonical AO order, Hartree. ``scf``: the
    level of theory of the model's references (``"minao"`` builds its Fock matrix; default RHF;
    its basis must be ``basis``); the spin is set from the electron count."""
    check_baseline(name)
    scf = scf or ScfSettings(basis=basis.name)
    if scf.basis != basis.name.lower():
        raise ValueError(f"baseline in basis {basis.name!r} asked with SCF settings in basis {scf.basis!r}")
    scf = replace(scf, spin=int(atoms.numbers.sum() - scf.charge) % 2)
    molecule = build_molecule(atoms, scf)
    if name == "sap":
        fock = _sap_fock(molecule, atoms)[np.ix_(*2 * [pyscf_to_canonical(basis, atoms.numbers)])]
    else:
        fock = fock_of_density(atoms, basis, scf)
    return fock, molecule_overlap(molecule, basis, atoms.numbers)


def _sap_fock(molecule, atoms: ase.Atoms) -> np.ndarray:
    """``h + V_SAP`` of a PySCF ``Mole``, PySCF's AO order."""
    from pyscf.scf.hf import get_hcore, make_sap

    potentials = {symbol: _sap_fit(symbol) for symbol in set(atoms.get_chemical_symbols())}
    return get_hcore(molecule) + make_sap(molecule, sap_basis=potentials)


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

    def subset(self, positions: Sequence[int]) -> BaselineMatrices:
        """The baselines of the frames at ``positions``, in that order."""
        return replace(
            self, matrices=[self.matrices[k] for k in positions], overlaps=[self.overlaps[k] for k in positions]
        )


@dataclass(frozen=True)
class Baseline:
    """The baseline stage of a model: baseline ``name`` (one of :data:`BASELINES`) in ``basis``
    (an :class:`AtomicBasis` of a PySCF basis name), in the Löwdin-orthogonal form if
    ``orthogonal`` (a ``fock_orthogonal`` target), else the AO form, at the references' level of
    theory ``scf`` (what ``"minao"`` builds; None: RHF in ``basis``). :meth:`compute` runs PySCF
    (CPU, one molecule at a time); its result can be handed to
    :meth:`nhamil.model.HamiltonianModel.predict` so that frames are never computed twice.
    Symmetry law: that of :func:`baseline_fock`."""

    name: str
    basis: AtomicBasis
    orthogonal: bool
    scf: ScfSettings | None = None

    def __post_init__(self) -> None:
        check_baseline(self.name)

    def of_solver(self, solver) -> np.ndarray | None:
        """(n_ao, n_ao) baseline of ``solver``'s molecule in the target's form, canonical AO
        order, Hartree, built with the solver's own DFT grid and density fitting (``solver``: a
        PySCF RHF or RKS object, not yet run), so that the SCF it runs next reuses both; None
        unless the baseline is ``"minao"`` and the solver is at the baseline's level of theory
        (method, functional, charge, density fitting): then :meth:`compute` applies. Built in
        the laboratory frame: on a DFT grid it follows rotations only to the grid's accuracy
        (2e-5 Ha for ethanol at PBE), immaterial for a start guess; predictions use
        :meth:`compute`, which is exact."""
        if self.name != "minao" or not _at_level(solver, self.scf or ScfSettings(basis=self.basis.name)):
            return None
        order = np.ix_(*2 * [pyscf_to_canonical(self.basis, solver.mol.atom_charges())])
        fock = np.asarray(solver.get_fock(dm=solver.get_init_guess(key="minao")), dtype=np.float64)[order]
        return lowdin_orthogonalize(fock, solver.get_ovlp()[order]) if self.orthogonal else fock

    def compute(self, frames: Sequence[ase.Atoms], progress: bool = False) -> BaselineMatrices:
        """Baseline matrices and AO overlaps of ``frames`` (Å), one PySCF molecule per frame."""
        matrices, overlaps = [], []
        for atoms in tqdm(frames, desc=f"{self.name} baseline", unit="structure", disable=not progress):
            fock, overlap = baseline_fock(self.name, atoms, self.basis, self.scf)
            matrices.append(lowdin_orthogonalize(fock, overlap) if self.orthogonal else fock)
            overlaps.append(overlap)
        return BaselineMatrices(self.name, self.orthogonal, matrices, overlaps)


def _at_level(solver, scf: ScfSettings) -> bool:
    """Whether the PySCF ``solver`` runs the method, functional, charge and density fitting of ``scf``."""
    from pyscf import dft

    kohn_sham = isinstance(solver, dft.rks.KohnShamDFT)
    level = ("rks" if kohn_sham else "rhf", solver.xc.lower() if kohn_sham else None, solver.mol.charge)
    fitted = getattr(solver, "with_df", None) is not None
    return (*level, fitted) == (scf.method, scf.xc, scf.charge, scf.density_fit)


@cache
def _sap_fit(symbol: str) -> np.ndarray:
    """(n, 2) exponents and weights of the Gaussian fit of one element's atomic potential.
    Cached: parsing the fit file costs about 1 ms per element."""
    from pyscf.gto.basis import load

    return np.asarray(load(SAP_BASIS, symbol)[0][1:], dtype=float)
