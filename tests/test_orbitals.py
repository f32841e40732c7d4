"""Orbital conventions checked against PySCF itself: F(R x) = D F(x) D^T."""

import ase.build
import numpy as np
import pytest
import torch
from pyscf import gto, scf

from nhamil.orbitals import (
    AtomicBasis,
    Shell,
    irrep_wigner,
    pyscf_to_canonical,
    random_rotation,
    real_spherical_harmonics,
)
from nhamil.testing import assert_equivariant


def _pyscf_fock_overlap(numbers, positions, basis):
    mol = gto.M(
        atom=[[int(z), tuple(p)] for z, p in zip(numbers, positions, strict=True)],
        basis=basis,
        unit="Angstrom",
        verbose=0,
    )
    mf = scf.RHF(mol)
    mf.conv_tol = 1e-11
    mf.kernel()
    assert mf.converged
    return mf.get_fock(), mf.get_ovlp()


@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH"])
def test_pyscf_matrices_rotate_with_basis_wigner(name):
    """PySCF's Fock and overlap matrices, in canonical order, follow rotations, inversion, translations
    and atom permutations (the Fock matrix, one SCF per transformation: all three at once): the AO
    law of nhamil.testing is PySCF's."""
    atoms = ase.build.molecule(name)
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    basis = AtomicBasis.from_pyscf("def2-svp", atoms.numbers)

    def canonical(frames, matrix):
        return [matrix(a)[np.ix_(*2 * [pyscf_to_canonical(basis, a.numbers)])] for a in frames]

    def fock(a):
        return _pyscf_fock_overlap(a.numbers, a.positions, "def2-svp")[0]

    def overlap(a):
        return gto.M(
            atom=[[int(z), tuple(p)] for z, p in zip(a.numbers, a.positions, strict=True)],
            basis="def2-svp",
            unit="Angstrom",
            verbose=0,
        ).intor("int1e_ovlp")

    assert_equivariant(
        lambda frames: canonical(frames, fock),
        [atoms],
        basis=basis,
        seed=7,
        atol=1e-8,
        kinds=("rotation", "improper rotation", "combined"),
    )
    assert_equivariant(lambda frames: canonical(frames, overlap), [atoms], basis=basis, seed=7, atol=1e-10)


def test_p_shells_move_and_nothing_else():
    basis = AtomicBasis.from_pyscf("def2-svp", [8])
    perm = pyscf_to_canonical(basis, [8])
    assert perm[:3].tolist() == [0, 1, 2]  # three s shells stay
    assert perm[3:6].tolist() == [4, 5, 3]  # first p shell: (py, pz, px)
    assert perm[9:].tolist() == list(range(9, 14))  # d shell stays


def test_shells_read_from_pyscf_including_general_contractions():
    basis = AtomicBasis.from_pyscf("cc-pvtz", [6])
    assert [s.l for s in basis.shells[6]] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]
    assert basis.shells[6][:2] == (Shell(0, 0), Shell(1, 0))
    assert basis.atom_size(6) == 30


@pytest.mark.parametrize("l", range(7))
def test_wigner_is_a_representation_and_matches_harmonics(l):
    generator = torch.Generator().manual_seed(l)
    r1, r2 = random_rotation(generator), random_rotation(generator, improper=True)
    d12 = irrep_wigner(l, -1, r1 @ r2)
    np.testing.assert_allclose(d12, irrep_wigner(l, -1, r1) @ irrep_wigner(l, -1, r2), atol=1e-13)
    vectors = torch.randn(10, 3, generator=generator, dtype=torch.float64)
    rotated = real_spherical_harmonics(l, vectors @ r2.T)
    np.testing.assert_allclose(
        rotated, real_spherical_harmonics(l, vectors) @ irrep_wigner(l, (-1) ** l, r2).T, atol=1e-13
    )


def test_unknown_basis_and_element_are_named():
    with pytest.raises(ValueError, match="no-such-basis"):
        AtomicBasis.from_pyscf("no-such-basis", [1])
    with pytest.raises(ValueError, match=r"Z=\[9\]"):
        AtomicBasis.from_pyscf("def2-svp", [1]).check_elements([1, 9])
