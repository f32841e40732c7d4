"""Physics of predicted matrices against PySCF references, per structure and over a data set.

Energies are compared in meV, dipoles in Debye, matrix blocks in µHa. For the ``saph`` target
only orbital energies exist (the minimal-basis matrix has no AO density); for the full Fock
targets (``fock_orthogonal``, ``fock``) the full set: orbitals, density, dipole and orbital
similarity.
Every quantity here is invariant under rotations and atom permutations, except the dipole
vector, which rotates with the molecule (its error norm is invariant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch

from ..blocks import HETERO, MINUS, ON_SITE, PLUS, MatrixLayout, matrix_to_blocks
from ..orbitals import AtomicBasis
from ..reference import ReferenceRecord, ScfSettings
from ..targets import Target, target_kind
from ..units import HARTREE_TO_MEV, HARTREE_TO_MICROHARTREE
from .electronic import (
    Orbitals,
    density_matrix,
    dipole_moment,
    occupied_similarity,
    orbitals_of,
    solve_orbitals,
    spurious_states,
)

BLOCK_NAMES = {ON_SITE: "on_site", PLUS: "same_element_plus", MINUS: "same_element_minus", HETERO: "different_element"}


@dataclass(frozen=True)
class StructureEvaluation:
    """One structure: predicted and reference orbitals (energies in Hartree); for full-Fock
    targets also dipoles (3,) in Debye and the occupied-orbital similarity (subspace, and
    (n_occ,) per orbital); ``spurious``: indices of predicted intruder states."""

    predicted: Orbitals
    reference: Orbitals
    spurious: np.ndarray
    dipole_predicted: np.ndarray | None = None
    dipole_reference: np.ndarray | None = None
    subspace_similarity: float | None = None
    orbital_similarity: np.ndarray | None = None


def evaluate_structure(
    predicted: np.ndarray,
    record: ReferenceRecord,
    atoms: ase.Atoms,
    target: Target | str,
    settings: ScfSettings,
    margin: float = 1.0,
) -> StructureEvaluation:
    """Compare one predicted ``target`` matrix (Hartree, canonical order) with its reference
    ``record``; ``settings`` give the basis for the dipole integrals; ``margin`` (Hartree) is
    how far outside the reference energy range a state counts as spurious."""
    kind = target_kind(str(target))
    if not kind.full_fock:
        guess = solve_orbitals(predicted, record.saph_n_occupied)
        reference = Orbitals(record.saph_energies, np.eye(len(record.saph_energies)), record.saph_n_occupied)
        return StructureEvaluation(guess, reference, spurious_states(guess.energies, reference.energies, margin))
    guess = orbitals_of(predicted, record.overlap, record.n_occupied, kind.orthogonal)
    reference = Orbitals(record.mo_energy, record.mo_coeff, record.n_occupied)
    subspace, per_orbital = occupied_similarity(guess, reference, record.overlap)
    return StructureEvaluation(
        guess,
        reference,
        spurious_states(guess.energies, reference.energies, margin),
        dipole_predicted=dipole_moment(atoms, density_matrix(guess), settings),
        dipole_reference=dipole_moment(atoms, density_matrix(reference), settings),
        subspace_similarity=subspace,
        orbital_similarity=per_orbital,
    )


def summarize(evaluations: Sequence[StructureEvaluation]) -> dict:
    """Flat, JSON-ready summary: orbital-energy, HOMO, LUMO and gap MAE (meV), MAE per state
    index (list, meV; only where every structure has the same number of states, as the frames
    of one molecule do, not a set of different molecules), dipole MAE (Debye), occupied
    similarity, and which structures hold spurious states."""
    result = {
        **_energy_summary(evaluations),
        "spurious_structures": [i for i, e in enumerate(evaluations) if len(e.spurious)],
        "n_spurious_states": int(sum(len(e.spurious) for e in evaluations)),
    }
    if all(e.dipole_predicted is not None for e in evaluations):
        result.update(_dipole_summary(evaluations))
    return result


def _energy_summary(evaluations: Sequence[StructureEvaluation]) -> dict:
    def mae(values) -> float:
        return float(np.mean(np.abs(values)) * HARTREE_TO_MEV)

    occupied = np.concatenate(
        [
            e.predicted.energies[: e.predicted.n_occupied] - e.reference.energies[: e.reference.n_occupied]
            for e in evaluations
        ]
    )
    summary = {
        "occupied_energy_mae_mev": mae(occupied),
        "energy_mae_mev": mae(np.concatenate([e.predicted.energies - e.reference.energies for e in evaluations])),
        "homo_mae_mev": mae([e.predicted.homo - e.reference.homo for e in evaluations]),
        "lumo_mae_mev": mae([e.predicted.lumo - e.reference.lumo for e in evaluations]),
        "gap_mae_mev": mae([e.predicted.gap - e.reference.gap for e in evaluations]),
    }
    if len({len(e.predicted.energies) for e in evaluations}) == 1:
        summary["state_energy_mae_mev"] = per_state_mae(evaluations).tolist()
    return summary


def per_state_mae(evaluations: Sequence[StructureEvaluation]) -> np.ndarray:
    """(n_states,) orbital-energy MAE (meV) per state index; needs equal state counts."""
    sizes = {len(e.predicted.energies) for e in evaluations}
    if len(sizes) != 1:
        raise ValueError(f"errors per state index need structures with equal numbers of states, got {sorted(sizes)}")
    errors = np.stack([e.predicted.energies - e.reference.energies for e in evaluations])
    return np.abs(errors).mean(axis=0) * HARTREE_TO_MEV


def _dipole_summary(evaluations: Sequence[StructureEvaluation]) -> dict:
    difference = np.stack([e.dipole_predicted - e.dipole_reference for e in evaluations])
    norms = [np.linalg.norm(e.dipole_predicted) - np.linalg.norm(e.dipole_reference) for e in evaluations]
    similarity = [e.subspace_similarity for e in evaluations]
    return {
        "dipole_component_mae_debye": float(np.abs(difference).mean()),
        "dipole_norm_mae_debye": float(np.abs(norms).mean()),
        "dipole_vector_error_mean_debye": float(np.linalg.norm(difference, axis=1).mean()),
        "occupied_similarity_mean": float(np.mean(similarity)),
        "occupied_similarity_min": float(np.min(similarity)),
    }


def block_type_errors(
    predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], basis: AtomicBasis, numbers: Sequence[np.ndarray]
) -> dict[str, float]:
    """Matrix-element MAE (µHa) per block family (on-site, same-element +/-, different
    elements), over the coupled (lambda, sigma) blocks of ``basis`` (the target's basis)."""
    layout = MatrixLayout.from_numbers(basis, numbers)
    blocks = [
        matrix_to_blocks([torch.as_tensor(np.asarray(m)) for m in matrices], layout)
        for matrices in (predicted, reference)
    ]
    errors: dict[int, list[torch.Tensor]] = {}
    for key, block in blocks[1].items():
        errors.setdefault(key.kind.block_type, []).append((blocks[0][key].values - block.values).abs().flatten())
    return {
        f"{BLOCK_NAMES[t]}_mae_uha": float(torch.cat(e).mean()) * HARTREE_TO_MICROHARTREE
        for t, e in sorted(errors.items())
    }


def onsite_shift_errors(
    predicted: Sequence[np.ndarray], reference: Sequence[np.ndarray], basis: AtomicBasis, numbers: Sequence[np.ndarray]
) -> dict[str, float]:
    """How much of the error E = predicted - reference of each atom's own block E_AA (canonical
    AO order, Hartree, one (n, n) matrix per structure of atoms ``numbers`` in ``basis``) is a
    shift of all the atom's levels alike. The atom's shift s_A = tr(E_AA) / n_A is a potential at
    the atom; the molecule's s_M = tr(E) / n is one for every orbital of the structure (it moves
    every orbital energy by s_M in an orthogonal basis). Returns MAEs in µHa, as ``<name>_mae_uha``
    for the names ``onsite`` (all elements of the on-site blocks), ``onsite_diagonal``,
    ``onsite_off_diagonal``, ``onsite_after_atom_shift`` (of E_AA - s_A I),
    ``onsite_after_molecule_shift`` (of E_AA - s_M I), ``atom_shift`` (|s_A| over atoms) and
    ``molecule_shift`` (|s_M| over structures).
    s_A and s_M are traces, so they are invariant under rotations and atom permutations; the element
    MAEs change slightly with the orientation of the errors, as every matrix-element MAE does."""
    parts: dict[str, list[np.ndarray]] = {
        name: []
        for name in (
            "onsite",
            "onsite_diagonal",
            "onsite_off_diagonal",
            "onsite_after_atom_shift",
            "onsite_after_molecule_shift",
            "atom_shift",
            "molecule_shift",
        )
    }
    for prediction, target, atoms in zip(predicted, reference, numbers, strict=True):
        error = np.asarray(prediction) - np.asarray(target)
        offsets = basis.atom_offsets(atoms)
        molecule_shift = np.trace(error) / len(error)
        parts["molecule_shift"].append(np.array([molecule_shift]))
        for start, stop in zip(offsets[:-1], offsets[1:], strict=True):
            block = error[start:stop, start:stop]
            identity = np.eye(len(block))
            atom_shift = np.trace(block) / len(block)
            parts["onsite"].append(block.ravel())
            parts["onsite_diagonal"].append(np.diag(block))
            parts["onsite_off_diagonal"].append(block[identity == 0])
            parts["onsite_after_atom_shift"].append((block - atom_shift * identity).ravel())
            parts["onsite_after_molecule_shift"].append((block - molecule_shift * identity).ravel())
            parts["atom_shift"].append(np.array([atom_shift]))
    return {
        f"{name}_mae_uha": HARTREE_TO_MICROHARTREE * float(np.abs(np.concatenate(values)).mean())
        for name, values in parts.items()
    }
