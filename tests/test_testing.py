"""nhamil.testing: each law passes on the library's equivariant objects and fails on a broken one,
naming the kind of transformation that breaks it."""

import ase
import ase.build
import numpy as np
import pytest
import torch
from pyscf import gto

from nhamil.errors import InputError
from nhamil.features import DensitySettings, EquivariantFeatures, atom_centered_features, symmetrized_pair_features
from nhamil.heads import RidgeSettings, fit_ridge
from nhamil.orbitals import AtomicBasis, pyscf_to_canonical
from nhamil.structures import Structures
from nhamil.testing import (
    INVARIANT,
    KINDS,
    AOMatrices,
    Cartesian,
    Features,
    assert_equivariant,
    equivariance_errors,
    random_transformations,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = DensitySettings(max_radial=2, max_angular=2)
SPECIES = (1, 6, 8)


def _rattled(name: str, seed: int = 0) -> ase.Atoms:
    atoms = ase.build.molecule(name)
    atoms.rattle(0.05, seed=seed)
    return atoms


def _failing_kinds(function, inputs, **kwargs) -> set[str]:
    return {kind for kind, (_, line) in equivariance_errors(function, inputs, **kwargs).items() if line}


@pytest.fixture(scope="module")
def ethanol():
    return _rattled("CH3CH2OH")


@pytest.fixture(scope="module")
def basis(ethanol):
    return AtomicBasis.from_pyscf("def2-svp", ethanol.numbers)


def _overlap(frames, basis):
    """Canonical-order def2-SVP overlap matrices of ``frames``, from PySCF."""
    matrices = []
    for atoms in frames:
        mol = gto.M(
            atom=[[int(z), tuple(p)] for z, p in zip(atoms.numbers, atoms.positions, strict=True)],
            basis="def2-svp",
            unit="Angstrom",
            verbose=0,
        )
        order = pyscf_to_canonical(basis, atoms.numbers)
        matrices.append(torch.as_tensor(mol.intor("int1e_ovlp")[np.ix_(order, order)]))
    return matrices


def _atom_index_per_ao(basis, atoms) -> torch.Tensor:
    offsets = basis.atom_offsets(atoms.numbers)
    return torch.as_tensor(np.repeat(np.arange(len(atoms)), np.diff(offsets)), dtype=torch.float64)


def _chirality(atoms) -> float:
    """det(r1 - r0, r2 - r0, r3 - r0): rotation and translation invariant, odd under inversion."""
    return float(np.linalg.det(atoms.positions[1:4] - atoms.positions[0]))


def test_random_transformations_are_what_they_say():
    sizes = [3, 9]
    transformations = random_transformations(sizes, n_trials=2, seed=1)
    assert [t.kind for t in transformations] == 2 * list(KINDS)
    for t in transformations:
        assert t.rotation.dtype == torch.float64 and t.translation.dtype == torch.float64
        torch.testing.assert_close(t.rotation @ t.rotation.T, torch.eye(3, dtype=torch.float64), atol=1e-14, rtol=0)
        assert t.improper == (t.kind in ("improper rotation", "combined"))
        assert (t.rotation == torch.eye(3, dtype=torch.float64)).all() == (t.kind in ("permutation", "translation"))
        assert bool(t.translation.abs().max() > 0) == (t.kind in ("translation", "combined"))
        permuted = [not (p == np.arange(n)).all() for p, n in zip(t.permutations, sizes, strict=True)]
        assert permuted == 2 * [t.kind in ("permutation", "combined")]
        assert sorted(t.permutations[1]) == list(range(9))
    again = random_transformations(sizes, n_trials=2, seed=1)
    assert all(torch.equal(a.rotation, b.rotation) for a, b in zip(transformations, again, strict=True))
    with pytest.raises(InputError, match="unknown transformation kinds \\['reflection'\\]"):
        random_transformations(sizes, kinds=["reflection"])


def test_ao_law_passes_pyscf_and_fails_broken_matrices(ethanol, basis):
    def overlap(frames):
        return _overlap(frames, basis)

    errors = assert_equivariant(overlap, [ethanol], basis=basis)
    assert set(errors) == set(KINDS) and max(errors.values()) < 1e-12
    eye = torch.eye(basis.n_ao(ethanol.numbers), dtype=torch.float64)

    def lab_frame(frames):
        return [s + 1e-3 * float(a.positions[:, 0].mean()) * eye for s, a in zip(overlap(frames), frames, strict=True)]

    assert _failing_kinds(lab_frame, [ethanol], basis=basis) == set(KINDS) - {"permutation"}

    def chiral(frames):
        return [s + 1e-3 * _chirality(a) * eye for s, a in zip(overlap(frames), frames, strict=True)]

    assert {"improper rotation", "combined"} <= _failing_kinds(chiral, [ethanol], basis=basis)
    assert not {"rotation", "translation"} & _failing_kinds(chiral, [ethanol], basis=basis)

    def labelled(frames):
        return [
            s + 1e-3 * torch.diag(_atom_index_per_ao(basis, a)) for s, a in zip(overlap(frames), frames, strict=True)
        ]

    assert _failing_kinds(labelled, [ethanol], basis=basis) == {"permutation", "combined"}
    with pytest.raises(AssertionError, match=r"permutation \(trial 0\) structure 0: max deviation .* > allowed"):
        assert_equivariant(labelled, [ethanol], basis=basis)


def test_the_law_is_read_from_a_declared_basis(ethanol, basis):
    class Model:
        def __init__(self, basis):
            self.basis = basis

        def predict(self, frames):
            return _overlap(frames, basis)

    assert_equivariant(Model(basis), [ethanol], kinds=("improper rotation",))
    with pytest.raises(InputError, match="cannot read the symmetry law of a list output"):
        assert_equivariant(Model(None).predict, [ethanol])


def _nu2(structures: Structures) -> EquivariantFeatures:
    return atom_centered_features(structures, SPECIES, SETTINGS, max_lambda=2, correlation_order=2)


@pytest.fixture(scope="module")
def batch():
    return Structures.from_atoms([_rattled("H2O", 1), _rattled("CH3CH2OH", 2)])


def test_features_law_passes_features_and_fails_broken_ones(batch):
    assert max(assert_equivariant(_nu2, batch).values()) < 1e-10

    def shuffled(structures):
        features = _nu2(structures)
        mu_shuffled = features.blocks[2, 1][:, [1, 0, 2, 3, 4]]
        return EquivariantFeatures(features.samples, {**features.blocks, (2, 1): mu_shuffled})

    assert _failing_kinds(shuffled, batch) == {"rotation", "improper rotation", "combined"}

    def unlabelled(structures):
        features = _nu2(structures)
        return EquivariantFeatures(features.samples.flip(0), features.blocks)

    assert _failing_kinds(unlabelled, batch) == {"permutation", "combined"}
    with pytest.raises(AssertionError, match=r"rotation \(trial 0\) block \(2, 1\)"):
        assert_equivariant(shuffled, batch)


def test_swapped_pairs_take_the_declared_sign(batch):
    def minus(structures):
        numbers = [
            structures.numbers[a:b].tolist() for a, b in zip(structures.ptr[:-1], structures.ptr[1:], strict=True)
        ]
        pairs = torch.tensor(
            [(s, i, j) for s, z in enumerate(numbers) for i in range(len(z)) for j in range(i) if z[i] == z[j]]
        )
        return symmetrized_pair_features(structures, SPECIES, SETTINGS, pairs, max_lambda=1)[1]

    assert_equivariant(minus, batch, law=Features(swap_sign=-1), kinds=("permutation",), n_trials=2)
    assert _failing_kinds(minus, batch, law=Features(swap_sign=1), kinds=("permutation",)) == {"permutation"}
    with pytest.raises(AssertionError, match="is not a sample of the original input"):
        assert_equivariant(minus, batch, kinds=("permutation",))


def test_float32_gets_the_float32_tolerance(batch):
    single = batch.to(dtype=torch.float32)
    errors = assert_equivariant(_nu2, single, kinds=("rotation",))
    assert 1e-12 < errors["rotation"]
    with pytest.raises(AssertionError, match="rotation"):
        assert_equivariant(_nu2, single, kinds=("rotation",), rtol=1e-10)


def test_heads_are_checked_on_feature_blocks():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(20, 5, 4, dtype=torch.float64, generator=generator)
    targets = features @ torch.randn(4, 2, dtype=torch.float64, generator=generator)
    fit = fit_ridge(features, targets, torch.arange(20), intercept=False, settings=RidgeSettings())
    inputs = EquivariantFeatures(
        torch.stack([torch.arange(20), *2 * [torch.zeros(20, dtype=torch.long)]], 1), {(2, -1): features}
    )

    def head(x):
        return EquivariantFeatures(x.samples, {(2, -1): fit.predict(x.blocks[2, -1])})

    assert set(assert_equivariant(head, inputs)) == {"rotation", "improper rotation"}
    weights = torch.linspace(1, 2, 5, dtype=torch.float64)[:, None]

    def per_mu(x):
        return EquivariantFeatures(x.samples, {(2, -1): weights * fit.predict(x.blocks[2, -1])})

    assert _failing_kinds(per_mu, inputs) == {"rotation", "improper rotation"}
    with pytest.raises(InputError, match="have no atoms"):
        assert_equivariant(head, inputs, kinds=("permutation",))


def test_cartesian_and_invariant_laws(ethanol):
    def dipole(frames):
        return np.stack([(a.numbers - a.numbers.mean()) @ a.positions for a in frames])

    def axial(frames):
        return np.stack([np.cross(a.positions[1] - a.positions[0], a.positions[2] - a.positions[0]) for a in frames])

    def inertia(frames):
        centred = [a.positions - a.positions.mean(0) for a in frames]
        return np.stack([c.T @ c for c in centred])

    frames = [ethanol, _rattled("CH3CH2OH", 5)]
    assert_equivariant(dipole, frames, law=Cartesian(1))
    assert_equivariant(inertia, frames, law=Cartesian(2))
    assert_equivariant(lambda f: np.trace(inertia(f), axis1=1, axis2=2), frames, law=INVARIANT)
    assert_equivariant(lambda f: (dipole(f), inertia(f)), frames, law=(Cartesian(1), Cartesian(2)))

    def ordered(f):
        return axial([a[:3] for a in f])  # the first three atoms: not permutation invariant

    assert_equivariant(ordered, frames, law=Cartesian(1, parity=-1), kinds=("rotation", "improper rotation"))
    assert _failing_kinds(ordered, frames, law=Cartesian(1), kinds=("rotation", "improper rotation")) == {
        "improper rotation"
    }
    positions = np.stack([a.positions for a in frames])

    def from_first_atom(p):
        return p.mean(axis=1) - p[:, 0]

    assert _failing_kinds(from_first_atom, positions, law=Cartesian(1)) == {"permutation", "combined"}


def test_a_zero_output_proves_nothing(ethanol):
    def zero(frames):
        return np.zeros((len(frames), 3))

    with pytest.raises(AssertionError, match="zero everywhere"):
        assert_equivariant(zero, [ethanol], law=Cartesian(1))
    assert_equivariant(zero, [ethanol], law=Cartesian(1), allow_zero=True)
    with pytest.raises(InputError, match="need the atomic numbers"):
        assert_equivariant(lambda p: [torch.eye(2)] * len(p), np.zeros((1, 3, 3)), law=AOMatrices(None))
