"""What the model learns: one :class:`Target` value, and the matrices it makes from reference records.

Target kinds (:data:`TARGET_KINDS`, by name):

- ``saph``: the projected valence Hamiltonian (minimal basis, orthogonal).
- ``fock_orthogonal``: the Löwdin-orthogonalized full Fock matrix S^-1/2 F S^-1/2.
- ``fock``: the AO Fock matrix F itself (full basis, not orthogonal).

All are symmetric, in Hartree, in canonical AO order, and rotate as D M D^T with the Wigner
matrix of their basis. Their eigenvalues (for ``fock``: generalized, ``F C = S C E``, with the
AO overlap S) are orbital energies (a subset for the SAPH).

A new kind is one :class:`TargetKind` (its matrix and occupied count per record) and one line of
:data:`TARGET_KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from .errors import InputError
from .orbitals import AtomicBasis
from .reference import ProjectionSettings, ReferenceRecord, ScfSettings, lowdin_orthogonalize

#: The settings of ``ScfSettings`` that make the level of theory (the SCF thresholds do not).
LEVEL_OF_THEORY = ("method", "xc", "basis", "charge", "spin")


@dataclass(frozen=True)
class TargetKind:
    """One kind of target matrix.

    matrix / n_occupied: a record's (n, n) target matrix (Hartree) and its occupied states;
    minimal: written in the projection's minimal basis (else in the SCF basis); orthogonal: its
    basis is orthonormal (else orbital energies need the AO overlap); full_fock: an AO Fock
    matrix up to the Löwdin transformation, so it has an AO density (dipole, start guess) and
    may be learned relative to a baseline Fock matrix.
    """

    matrix: Callable[[ReferenceRecord], np.ndarray]
    n_occupied: Callable[[ReferenceRecord], int]
    minimal: bool
    orthogonal: bool
    full_fock: bool

    def model_basis_name(self, scf_basis: str) -> str:
        """``"def2-svp"`` -> ``"def2-svp/minimal"`` for a minimal-basis kind, unchanged otherwise."""
        return scf_basis.lower() + ("/minimal" if self.minimal else "")


def _saph(record: ReferenceRecord) -> np.ndarray:
    return record.saph


def _fock_orthogonal(record: ReferenceRecord) -> np.ndarray:
    return lowdin_orthogonalize(record.fock, record.overlap)


def _fock(record: ReferenceRecord) -> np.ndarray:
    return record.fock


def _saph_occupied(record: ReferenceRecord) -> int:
    return record.saph_n_occupied


def _full_occupied(record: ReferenceRecord) -> int:
    return record.n_occupied


TARGET_KINDS: dict[str, TargetKind] = {
    "saph": TargetKind(_saph, _saph_occupied, minimal=True, orthogonal=True, full_fock=False),
    "fock_orthogonal": TargetKind(_fock_orthogonal, _full_occupied, minimal=False, orthogonal=True, full_fock=True),
    "fock": TargetKind(_fock, _full_occupied, minimal=False, orthogonal=False, full_fock=True),
}
TARGETS = tuple(TARGET_KINDS)


def target_kind(name: str) -> TargetKind:
    """The kind called ``name``; ``InputError`` naming it and the known kinds otherwise."""
    if name not in TARGET_KINDS:
        raise InputError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGET_KINDS[name]


@dataclass(frozen=True)
class TargetSet:
    """Target matrices of a list of structures.

    name: one of ``TARGETS``; basis: the basis the matrices are written in; matrices: one
    (n_ao, n_ao) float64 array per structure, Hartree; n_occupied: occupied states among each
    matrix's eigenvalues; overlaps: for a non-orthogonal target, each structure's (n_ao, n_ao)
    AO overlap (the metric of its eigenvalue problem), else None; ao_overlaps: for every full
    Fock target (``fock_orthogonal`` too), each structure's AO overlap, for the AO Fock matrix
    and the orbitals (``nhamil.evaluate.fock_errors``), else None.
    """

    name: str
    basis: AtomicBasis
    matrices: list[np.ndarray]
    n_occupied: list[int]
    overlaps: list[np.ndarray] | None = None
    ao_overlaps: list[np.ndarray] | None = None

    def subset(self, indices: Sequence[int]) -> TargetSet:
        overlaps = None if self.overlaps is None else [self.overlaps[i] for i in indices]
        ao_overlaps = None if self.ao_overlaps is None else [self.ao_overlaps[i] for i in indices]
        return TargetSet(
            self.name,
            self.basis,
            [self.matrices[i] for i in indices],
            [self.n_occupied[i] for i in indices],
            overlaps,
            ao_overlaps,
        )


@dataclass(frozen=True)
class Target:
    """What a model learns: the kind ``name`` (one of ``TARGETS``), at the level of theory
    ``scf`` (method, functional, basis, charge, spin of the references), with the SAPH's
    ``projection`` settings. Saved in every checkpoint (:meth:`to_dict`)."""

    name: str
    scf: ScfSettings = field(default_factory=ScfSettings)
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)

    def __post_init__(self):
        target_kind(self.name)

    def __str__(self) -> str:
        return self.name

    @property
    def kind(self) -> TargetKind:
        return TARGET_KINDS[self.name]

    @property
    def orthogonal(self) -> bool:
        """Whether the matrices' eigenvalues are orbital energies without an overlap."""
        return self.kind.orthogonal

    @property
    def full_fock(self) -> bool:
        """An AO Fock matrix (up to the Löwdin transformation): density, dipole, baseline, start guess."""
        return self.kind.full_fock

    @property
    def supports_baseline(self) -> bool:
        return self.kind.full_fock

    def check_full_fock(self, use: str) -> None:
        """Raise ``InputError`` ("``use`` needs a full Fock model ...") unless this target is a full
        Fock matrix, the input of a start guess, a refinement and the other uses of its density."""
        if not self.full_fock:
            raise InputError(f"{use} needs a full Fock model ('fock_orthogonal' or 'fock'), not {self.name!r}")

    @property
    def model_basis_name(self) -> str:
        """Name of the basis the model's matrices are in (``"def2-svp/minimal"`` for the SAPH)."""
        return self.kind.model_basis_name(self.scf.basis)

    def model_basis(self, scf_basis: AtomicBasis) -> AtomicBasis:
        """The basis of the matrices, from the SCF ``scf_basis`` (the minimal basis for the SAPH)."""
        return self.projection.minimal_basis(scf_basis) if self.kind.minimal else scf_basis

    def make(self, records: Sequence[ReferenceRecord], basis: AtomicBasis | None = None) -> TargetSet:
        """Target matrices of ``records``, computed in ``basis`` (the SCF basis; default: this
        target's basis over the records' elements)."""
        if basis is None:
            species = sorted({int(z) for record in records for z in record.numbers})
            basis = AtomicBasis.from_pyscf(self.scf.basis, species)
        overlaps = None if self.orthogonal else [record.overlap for record in records]
        ao_overlaps = [record.overlap for record in records] if self.full_fock else None
        return TargetSet(
            self.name,
            self.model_basis(basis),
            [self.kind.matrix(r) for r in records],
            [self.kind.n_occupied(r) for r in records],
            overlaps,
            ao_overlaps,
        )

    def orbital_energies(self, matrix: np.ndarray, overlap: np.ndarray | None = None) -> np.ndarray:
        """(n,) ascending eigenvalues (Hartree) of one (n, n) target matrix: plain for an
        orthogonal target, generalized with the (n, n) AO ``overlap`` (required) otherwise."""
        return orbital_energies_of(matrix, None if self.orthogonal else _required(overlap, self.name))

    def level_of_theory(self) -> dict:
        """The settings that make the references' physics: method, xc, basis, charge, spin."""
        settings = self.scf.to_dict()
        return {name: settings[name] for name in LEVEL_OF_THEORY}

    def check_level_of_theory(self, scf: ScfSettings, source: str) -> None:
        """Raise ``InputError`` naming both levels of theory if ``scf`` (from ``source``, e.g. a
        run's config) is not this target's: a model is only valid for data of its own level."""
        theirs = {name: scf.to_dict()[name] for name in LEVEL_OF_THEORY}
        if theirs != self.level_of_theory():
            raise InputError(
                f"the model was trained on {describe_level(self.level_of_theory())} references but "
                f"{source} is {describe_level(theirs)}: use data of the model's level of theory, "
                "or a model trained at yours"
            )

    def to_dict(self) -> dict:
        """Plain data (strings, numbers, lists, dicts) that :meth:`from_dict` restores."""
        return {"name": self.name, "scf": self.scf.to_dict(), "projection": self.projection.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping) -> Target:
        return cls(data["name"], ScfSettings(**data["scf"]), ProjectionSettings(**data["projection"]))

    @classmethod
    def named(cls, name: str, model_basis_name: str) -> Target:
        """A ``name`` target for a model in ``model_basis_name``, at the default level of theory
        (RHF, charge 0, spin 0) and projection: for models built in code from a bare name."""
        scf_basis = model_basis_name.removesuffix("/minimal") if target_kind(name).minimal else model_basis_name
        return cls(name, ScfSettings(basis=scf_basis))


def orbital_energies_of(matrix: np.ndarray, overlap: np.ndarray | None = None) -> np.ndarray:
    """(n,) ascending eigenvalues (Hartree) of a symmetric (n, n) matrix, generalized with the
    (n, n) ``overlap`` if given (``F C = S C E``)."""
    if overlap is None:
        return np.linalg.eigvalsh(np.asarray(matrix))
    return scipy.linalg.eigh(np.asarray(matrix), np.asarray(overlap), eigvals_only=True)


def describe_level(level: Mapping) -> str:
    """ "RHF/def2-svp" or "RKS pbe/def2-svp", with charge and spin when not 0."""
    method = level["method"].upper() + (f" {level['xc']}" if level.get("xc") else "")
    extra = "".join(f", {name} {level[name]}" for name in ("charge", "spin") if level.get(name))
    return f"{method}/{level['basis']}{extra}"


def _required(overlap: np.ndarray | None, name: str) -> np.ndarray:
    if overlap is None:
        raise ValueError(f"target {name!r} is not orthogonal: its orbital energies need the AO overlap")
    return overlap


def make_targets(
    records: Sequence[ReferenceRecord], name: str, basis: AtomicBasis, projection: ProjectionSettings
) -> TargetSet:
    """Targets ``name`` of ``records`` computed in the full ``basis`` (the SCF basis)."""
    return Target(name, ScfSettings(basis=basis.name), projection).make(records, basis)
