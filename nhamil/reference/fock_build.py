"""One Fock build F[P] from a density, exactly equivariant on a DFT grid.

PySCF's DFT grids are fixed in the laboratory frame, which breaks rotation equivariance of a
Kohn-Sham Fock matrix by up to 2e-5 Ha (ethanol, PBE/def2-SVP). :func:`fock_of_density` builds
F[P] with the molecule in its principal axes of inertia and rotates the result back with the
basis's Wigner matrix: the axes are defined up to signs and order, and the Lebedev grids are
invariant under both (octahedral symmetry), so F[P] follows every rotation, inversion and atom
permutation of the molecule (with P moved alike) to round-off. The orientation is ill-defined
only where two moments of inertia coincide. Matrices are float64, Hartree, canonical AO order
(``nhamil.orbitals``).

Users: the ``"minao"`` baseline (:mod:`nhamil.reference.baseline`, P = PySCF's minimal-basis
guess) and the one-build refinement of a prediction (:mod:`nhamil.evaluate.refinement`).
"""

from __future__ import annotations

import ase
import numpy as np
import torch

from nhamil.orbitals import AtomicBasis, basis_wigner, pyscf_to_canonical
from nhamil.reference.scf import build_molecule, make_solver
from nhamil.reference.settings import ScfSettings


def principal_axes(atoms: ase.Atoms) -> np.ndarray:
    """(3, 3) proper rotation whose rows are the principal axes of inertia of ``atoms`` (ASE's
    masses), ascending moments: ``(x - x_com) @ axes.T`` are the positions in that frame. Law:
    for a rotation R of the molecule, the rows turn with it (``axes(R x) = axes(x) R^T`` up to
    the sign and order of rows)."""
    _, axes = atoms.get_moments_of_inertia(vectors=True)
    return axes * np.sign(np.linalg.det(axes))


def fock_of_density(
    atoms: ase.Atoms, basis: AtomicBasis, scf: ScfSettings, density: np.ndarray | None = None
) -> np.ndarray:
    """(n_ao, n_ao) Fock matrix F[P] of ``atoms`` (Å) at the level ``scf`` (its basis must be
    ``basis``), canonical AO order, Hartree. ``density``: the (n_ao, n_ao) closed-shell AO
    density P (canonical order, trace(P S) = electrons); None: PySCF's minimal-basis guess
    (``"minao"``), made in the principal frame. For an open shell, the restricted open-shell
    Fock matrix of the guess. Law: ``F[P](R x) = D F[P](x) D^T`` when ``P`` moves as
    ``D P D^T`` (D the basis's Wigner matrix of R, proper or improper), likewise for atom
    permutations."""
    axes = principal_axes(atoms)
    frame = atoms.copy()
    frame.positions = (atoms.positions - atoms.get_center_of_mass()) @ axes.T
    solver = make_solver(build_molecule(frame, scf), scf)
    order = pyscf_to_canonical(basis, atoms.numbers)
    wigner = basis_wigner(basis, atoms.numbers, torch.as_tensor(axes.T)).numpy()
    if density is None:
        frame_density = solver.get_init_guess(key="minao")
    else:
        inverse = np.argsort(order)
        frame_density = (wigner.T @ np.asarray(density, dtype=np.float64) @ wigner)[np.ix_(inverse, inverse)]
    fock = np.asarray(solver.get_fock(dm=frame_density), dtype=np.float64)
    return wigner @ fock[np.ix_(order, order)] @ wigner.T
