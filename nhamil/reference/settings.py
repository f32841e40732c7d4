"""Settings of the reference calculations: keyword-only, frozen, hashable, JSON-serializable.

``ScfSettings`` says how PySCF solves each structure; ``ProjectionSettings`` says how the
full-basis orbitals are projected onto a minimal basis (the SAPH, see ``saph.py``). Both are
plain values: equal settings give equal ``to_dict()`` and so the same cache entry.

About ``xc="b3lyp"``: in PySCF >= 2.3 (checked in 2.14, ``pyscf/dft/libxc.py``) ``"b3lyp"`` is
libxc's ``HYB_GGA_XC_B3LYP`` (id 402), whose correlation part is VWN in its RPA form (VWN3,
Gaussian's B3LYP; PySCF issue 1480). The VWN5 variant (PySCF's ``b3lyp`` before 2.3, Turbomole's, ORCA's) is
``"b3lyp5"``. A site-wide ``B3LYP_WITH_VWN5`` in PySCF's config switches ``"b3lyp"`` back to
VWN5, so write ``"b3lyp5"`` or ``"b3lypg"`` when it matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from nhamil.orbitals import AtomicBasis, Shell

_METHODS = ("rhf", "rks")


@dataclass(frozen=True, kw_only=True)
class ScfSettings:
    """A restricted PySCF single point: Hartree-Fock (``"rhf"``) or Kohn-Sham (``"rks"``,
    functional ``xc``). ``conv_tol`` is on the total energy in Hartree; ``spin`` is 2S (PySCF's
    convention); with ``spin != 0`` PySCF runs the restricted open-shell variant. ``density_fit``
    approximates the two-electron integrals by density fitting (PySCF's ``density_fit()``, its
    default auxiliary basis for ``basis``: def2-universal-jkfit for def2 sets); it is left out of
    ``to_dict`` when off, so existing caches keep their hash."""

    method: str = "rhf"
    xc: str | None = None
    basis: str = "def2-svp"
    conv_tol: float = 1e-10
    max_cycle: int = 100
    charge: int = 0
    spin: int = 0
    density_fit: bool = False

    def __post_init__(self):
        object.__setattr__(self, "method", self.method.lower())
        object.__setattr__(self, "basis", self.basis.lower())
        if self.xc is not None:
            object.__setattr__(self, "xc", self.xc.lower())
        if self.method not in _METHODS:
            raise ValueError(f"unknown SCF method {self.method!r}; choose one of {_METHODS}")
        if (self.method == "rks") != (self.xc is not None):
            raise ValueError(
                f"method {self.method!r} with xc={self.xc!r}: 'rks' needs an xc functional, 'rhf' takes none"
            )

    def to_dict(self) -> dict:
        settings = asdict(self)
        if not self.density_fit:
            del settings["density_fit"]
        return settings


def _default_minimal_shells() -> dict[int, tuple[tuple[int, int], ...]]:
    return {1: ((0, 0),), 6: ((1, 0), (0, 1)), 7: ((1, 0), (0, 1)), 8: ((1, 0), (0, 1))}


def _default_core_orbitals() -> dict[int, int]:
    return {1: 0, 6: 1, 7: 1, 8: 1}


@dataclass(frozen=True, kw_only=True)
class ProjectionSettings:
    """How the SAPH is made from the full-basis orbitals.

    minimal_shells: per atomic number, the shells of the full basis that form the minimal
        basis, as (n, l) pairs: n is the shell's rank among that element's shells of angular
        momentum l (see :class:`nhamil.orbitals.Shell`). Default: H 1s (first s); C, N, O 2s
        (second s) and 2p (first p).
    core_orbitals: per atomic number, how many of the lowest orbitals each atom contributes to
        the dropped core.
    extra_candidates: candidate orbitals beyond the minimal-basis size, after the core.
    threshold: smallest residual norm for a candidate's projection to count as independent.

    Mappings are stored as sorted tuples of (Z, value) pairs, so the settings hash.
    """

    minimal_shells: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=_default_minimal_shells)
    core_orbitals: Mapping[int, int] = field(default_factory=_default_core_orbitals)
    extra_candidates: int = 8
    threshold: float = 1e-8

    def __post_init__(self):
        shells = {int(z): tuple((int(n), int(l)) for n, l in v) for z, v in dict(self.minimal_shells).items()}
        cores = {int(z): int(v) for z, v in dict(self.core_orbitals).items()}
        object.__setattr__(self, "minimal_shells", tuple(sorted(shells.items())))
        object.__setattr__(self, "core_orbitals", tuple(sorted(cores.items())))

    def shells(self, z: int) -> tuple[Shell, ...]:
        """Minimal-basis shells of element ``z``; ``ValueError`` naming it if not set."""
        return tuple(Shell(n, l) for n, l in self._lookup("minimal_shells", z))

    def n_core(self, z: int) -> int:
        """Core orbitals dropped per atom of element ``z``; ``ValueError`` naming it if not set."""
        return self._lookup("core_orbitals", z)

    def minimal_basis(self, basis: AtomicBasis) -> AtomicBasis:
        """The minimal basis: the chosen shells of ``basis``, for every element ``basis`` covers."""
        return basis.subset({z: self.shells(z) for z in basis.shells}, "minimal")

    def check_elements(self, numbers) -> None:
        """Raise ``ValueError`` naming the first element of ``numbers`` these settings miss."""
        for z in sorted({int(z) for z in numbers}):
            self.shells(z)
            self.n_core(z)

    def to_dict(self) -> dict:
        """Plain JSON data; keys of the per-element tables are strings of Z."""
        return {
            "minimal_shells": {str(z): [list(s) for s in v] for z, v in self.minimal_shells},
            "core_orbitals": {str(z): v for z, v in self.core_orbitals},
            "extra_candidates": self.extra_candidates,
            "threshold": self.threshold,
        }

    def _lookup(self, name: str, z: int):
        table = dict(getattr(self, name))
        if int(z) not in table:
            from pyscf.data.elements import ELEMENTS

            raise ValueError(
                f"ProjectionSettings.{name} has no entry for element {ELEMENTS[int(z)]} (Z={int(z)}); "
                f"it covers Z={sorted(table)}"
            )
        return table[int(z)]
