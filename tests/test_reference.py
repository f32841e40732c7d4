"""PySCF reference data: the SAPH against the paper's matrices, its symmetry law, and the cache."""

import dataclasses
import json

import ase
import ase.build
import numpy as np
import pytest
from paper_data import ETHANOL, WATER, paper_saph

from nhamil.orbitals import AtomicBasis
from nhamil.reference import (
    CorruptCacheError,
    ProjectionSettings,
    ScfSettings,
    UnconvergedSCFError,
    build_reference_set,
    lowdin_orthogonalize,
    projected_valence_hamiltonian,
    read_frames,
    run_scf,
    store,
)
from nhamil.reference.scf import build_molecule
from nhamil.testing import INVARIANT, assert_equivariant

RHF = ScfSettings()
PROJECTION = ProjectionSettings()


def _waters(n: int, seed: int = 0) -> list[ase.Atoms]:
    """``n`` water molecules with distinct random distortions (0.05 Å) and no symmetry."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = ase.build.molecule("H2O")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def _saph(atoms: ase.Atoms, scf: ScfSettings = RHF):
    result = run_scf(atoms, scf)
    return result, projected_valence_hamiltonian(
        result, atoms.numbers, AtomicBasis.from_pyscf(scf.basis, atoms.numbers), PROJECTION
    )


def _count_scf_calls(monkeypatch, fail_at: int | None = None) -> list[int]:
    """Count (and optionally make the ``fail_at``-th raise) the SCF runs of the cache builder."""
    calls = []
    original = store.run_scf

    def counted(atoms, settings):
        calls.append(len(calls) + 1)
        if len(calls) == fail_at:
            raise RuntimeError("simulated crash")
        return original(atoms, settings)

    monkeypatch.setattr(store, "run_scf", counted)
    return calls


# --- the paper's matrices ---------------------------------------------------------------------


@pytest.mark.parametrize("frame", [0, 500, 999])
def test_water_saph_matches_paper(frame):
    atoms = read_frames(WATER, frame)[0]
    result, (saph, energies, minimal_basis) = _saph(atoms)
    assert result.converged
    assert minimal_basis.n_ao(atoms.numbers) == 6
    np.testing.assert_allclose(saph, paper_saph("water", [frame])[0], atol=1e-6, rtol=0)
    np.testing.assert_allclose(energies, result.mo_energy[1:7], atol=1e-14)


def test_ethanol_saph_matches_paper():
    reference = paper_saph("ethanol", range(2))
    for frame, atoms in enumerate(read_frames(ETHANOL, ":2")):
        _, (saph, _, _) = _saph(atoms)
        np.testing.assert_allclose(saph, reference[frame], atol=1e-4, rtol=0)


def test_read_frames_drops_the_declared_periodicity():
    frames = read_frames(WATER, ":3")
    assert len(frames) == 3
    assert all(not a.pbc.any() and not a.cell.any() for a in frames)


# --- the symmetry law ---------------------------------------------------------------------------


def test_saph_rotates_with_minimal_basis_wigner():
    """The SAPH follows rotations, inversion and atom permutations in the minimal basis, with the
    same orbital energies, its eigenvalues."""
    atoms = _waters(1, seed=3)[0]
    _, (saph, energies, minimal_basis) = _saph(atoms)
    np.testing.assert_allclose(np.linalg.eigvalsh(saph), energies, atol=1e-12, rtol=0)

    cache = {}

    def saph_of(frames, part: int):
        """Part 0 (SAPH) or 1 (orbital energies) of each frame's projection, one SCF per geometry."""
        keys = [(a.numbers.tobytes(), a.positions.tobytes()) for a in frames]
        for key, a in zip(keys, frames, strict=True):
            cache[key] = cache[key] if key in cache else _saph(a)[1]
        return [cache[key][part] for key in keys]

    kinds = ("rotation", "improper rotation", "combined")
    assert_equivariant(lambda f: saph_of(f, 0), [atoms], basis=minimal_basis, seed=11, atol=1e-8, kinds=kinds)
    assert_equivariant(lambda f: saph_of(f, 1), [atoms], law=INVARIANT, seed=11, atol=1e-9, kinds=kinds)


def test_saph_ignores_orbital_signs():
    atoms = _waters(1, seed=4)[0]
    result, (saph, _, _) = _saph(atoms)
    signs = np.where(np.random.default_rng(0).random(result.mo_energy.size) < 0.5, -1.0, 1.0)
    flipped = dataclasses.replace(result, mo_coeff=result.mo_coeff * signs)
    saph_flipped, _, _ = projected_valence_hamiltonian(
        flipped, atoms.numbers, AtomicBasis.from_pyscf("def2-svp", atoms.numbers), PROJECTION
    )
    assert (signs[1:7] < 0).any()
    np.testing.assert_allclose(saph_flipped, saph, atol=1e-12, rtol=0)


def test_lowdin_fock_eigenvalues_are_orbital_energies():
    result = run_scf(_waters(1, seed=5)[0], RHF)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(lowdin_orthogonalize(result.fock, result.overlap)), result.mo_energy, atol=1e-10, rtol=0
    )


# --- settings and errors ------------------------------------------------------------------------


def test_molecules_of_one_composition_are_independent_copies():
    """build_molecule copies one Mole per composition: each copy equals a Mole built afresh, and
    making the second leaves the first where it was."""
    from pyscf import gto

    first, second = _waters(2)
    molecules = [build_molecule(atoms, RHF) for atoms in (first, second)]
    fresh = gto.M(
        atom=[(s, tuple(p)) for s, p in zip(second.get_chemical_symbols(), second.positions, strict=True)],
        unit="Angstrom",
        basis="def2-svp",
        verbose=0,
    )
    np.testing.assert_array_equal(molecules[1].intor("int1e_ovlp"), fresh.intor("int1e_ovlp"))
    assert molecules[1].energy_nuc() == pytest.approx(fresh.energy_nuc(), rel=1e-14)
    np.testing.assert_allclose(molecules[0].atom_coords(unit="Angstrom"), first.positions, atol=1e-12, rtol=0)


def test_settings_validate_and_hash():
    with pytest.raises(ValueError, match="'ccsd'"):
        ScfSettings(method="ccsd")
    with pytest.raises(ValueError, match="needs an xc"):
        ScfSettings(method="rks")
    assert ScfSettings(basis="def2-SVP") == RHF
    assert hash(ProjectionSettings(minimal_shells={8: [(1, 0), (0, 1)], 1: [(0, 0)]})) != hash(PROJECTION)
    assert json.loads(json.dumps(PROJECTION.to_dict()))["minimal_shells"]["6"] == [[1, 0], [0, 1]]


@pytest.mark.filterwarnings("ignore:Basis may be available in basis-set-exchange")
def test_unknown_element_is_named(tmp_path):
    uranium_hydride = ase.Atoms("UH", positions=[(0, 0, 0), (0, 0, 2.0)])
    with pytest.raises(ValueError, match=r"element U \(Z=92\)"):
        run_scf(uranium_hydride, RHF)
    hydrogen_fluoride = ase.Atoms("HF", positions=[(0, 0, 0), (0, 0, 0.92)])
    with pytest.raises(ValueError, match=r"element F \(Z=9\)"):
        build_reference_set([hydrogen_fluoride], RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    with_uranium = ProjectionSettings(minimal_shells={1: ((0, 0),), 92: ((0, 0),)}, core_orbitals={1: 0, 92: 0})
    with pytest.raises(ValueError, match=r"element U \(Z=92\)"):
        build_reference_set([uranium_hydride], RHF, with_uranium, tmp_path, n_workers=1, progress=False)


# --- the cache ----------------------------------------------------------------------------------


def _assert_same_records(first, second):
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
        np.testing.assert_allclose(a.saph, b.saph, atol=1e-10, rtol=0)
        np.testing.assert_allclose(a.fock, b.fock, atol=1e-10, rtol=0)
        assert (a.e_tot, a.converged, a.n_core, a.n_occupied) == pytest.approx(
            (b.e_tot, b.converged, b.n_core, b.n_occupied)
        )


def test_second_build_reads_the_cache(tmp_path, monkeypatch):
    frames = _waters(3)
    calls = _count_scf_calls(monkeypatch)
    first = build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    second = build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    assert len(calls) == 3
    _assert_same_records(first, second)
    assert (first[0].n_occupied, first[0].saph_n_occupied, first[0].n_core) == (5, 4, 1)
    (folder,) = tmp_path.iterdir()
    assert sorted(p.suffix for p in folder.iterdir()) == [".h5"] * 3 + [".json"]
    assert json.loads((folder / "settings.json").read_text())["scf"]["basis"] == "def2-svp"


@pytest.mark.slow
def test_worker_processes_give_the_in_process_records(tmp_path):
    frames = _waters(4, seed=1)
    pooled = build_reference_set(frames, RHF, PROJECTION, tmp_path / "pool", n_workers=2, progress=False)
    serial = build_reference_set(frames, RHF, PROJECTION, tmp_path / "serial", n_workers=1, progress=False)
    _assert_same_records(pooled, serial)


@pytest.mark.parametrize(
    "changed", [ScfSettings(conv_tol=1e-9), ScfSettings(basis="sto-3g"), ProjectionSettings(extra_candidates=4)]
)
def test_changed_settings_make_new_entries(tmp_path, monkeypatch, changed):
    frames = _waters(2)
    build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    calls = _count_scf_calls(monkeypatch)
    scf, projection = (changed, PROJECTION) if isinstance(changed, ScfSettings) else (RHF, changed)
    build_reference_set(frames, scf, projection, tmp_path, n_workers=1, progress=False)
    assert len(calls) == 2
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_file_is_named(tmp_path, damage):
    frames = _waters(2)
    build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    victim = sorted(tmp_path.glob("*/*.h5"))[0]
    content = victim.read_bytes()
    victim.write_bytes(b"not hdf5" if damage == "garbage" else content[: len(content) // 2])
    with pytest.raises(CorruptCacheError, match=f"{victim}.*rebuild_damaged=true"):
        build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)


def test_interrupted_build_resumes_without_recomputing(tmp_path, monkeypatch):
    frames = _waters(4, seed=2)
    _count_scf_calls(monkeypatch, fail_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    assert len(list(tmp_path.glob("*/*.h5"))) == 2
    assert not list(tmp_path.glob("*/.*"))
    calls = _count_scf_calls(monkeypatch)
    records = build_reference_set(frames, RHF, PROJECTION, tmp_path, n_workers=1, progress=False)
    assert len(calls) == 2
    assert [r.positions.tolist() for r in records] == [a.positions.tolist() for a in frames]


def test_unconverged_frames_are_refused_or_flagged(tmp_path, monkeypatch):
    frames = _waters(3)
    hurried = ScfSettings(max_cycle=1)
    with pytest.raises(UnconvergedSCFError, match=r"frame\(s\) \[0, 1, 2\]") as error:
        build_reference_set(frames, hurried, PROJECTION, tmp_path, n_workers=1, progress=False)
    assert error.value.frames == [0, 1, 2]
    calls = _count_scf_calls(monkeypatch)
    with pytest.warns(UserWarning, match="unconverged"):
        records = build_reference_set(
            frames, hurried, PROJECTION, tmp_path, n_workers=1, progress=False, allow_unconverged=True
        )
    assert len(calls) == 0
    assert [r.converged for r in records] == [False] * 3
