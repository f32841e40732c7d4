"""Orbital conventions: shells per element, canonical AO order, Wigner matrices of a basis.

Every matrix inside nhamil is written in the *canonical* AO order: atoms in structure order,
on each atom its shells in PySCF's order, and inside a shell the 2l+1 real spherical
harmonics ordered m = -l..l in the standard real (z-polar) convention. PySCF already uses that
order for l >= 2; its p shells are (px, py, pz) and are reordered to (py, pz, px) here.

Symmetry law. For a proper or improper rotation R acting on positions (r -> R r), a canonical
shell of angular momentum l transforms with ``shell_wigner(l, R)``, and any AO matrix with

    F(R x) = D F(x) D^T,    D = basis_wigner(basis, numbers, R)  (block diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
import torch
from e3nn import o3

#: PySCF orders a p shell (px, py, pz) = m (1, -1, 0); canonical is m (-1, 0, 1).
_PYSCF_P_TO_CANONICAL = (1, 2, 0)


@dataclass(frozen=True, order=True)
class Shell:
    """One shell of an element's basis: angular momentum ``l`` and ``n``, its rank among the
    element's shells of the same l (0 for the first s shell, 1 for the second, ...)."""

    n: int
    l: int

    @property
    def size(self) -> int:
        return 2 * self.l + 1

    @property
    def label(self) -> str:
        return f"{self.n}{'spdfghi'[self.l]}"


@dataclass(frozen=True)
class AtomicBasis:
    """The shells of each element of a basis, in canonical (PySCF shell) order.

    ``shells`` maps an atomic number to its tuple of :class:`Shell`. ``name`` is the PySCF
    basis name, or a derived name such as ``"def2-svp/minimal"`` for a subset of shells.
    """

    name: str
    shells: dict[int, tuple[Shell, ...]]

    @classmethod
    def from_pyscf(cls, basis: str, numbers) -> AtomicBasis:
        """Read the shell structure of ``basis`` for every element in ``numbers`` from PySCF.

        Raises ``ValueError`` naming the element if PySCF has no such basis for it.
        """
        return cls(
            basis.lower(), {int(z): _pyscf_element_shells(basis, int(z)) for z in set(np.asarray(numbers).tolist())}
        )

    def subset(self, keep: dict[int, tuple[Shell, ...]], suffix: str) -> AtomicBasis:
        """A basis with only the shells in ``keep`` (per element), in this basis' order."""
        chosen = {}
        for z, shells in self.shells.items():
            missing = set(keep.get(z, ())) - set(shells)
            if z not in keep or missing:
                raise ValueError(f"basis {self.name!r} has no shells {sorted(missing) or 'chosen'} for element Z={z}")
            chosen[z] = tuple(s for s in shells if s in keep[z])
        return AtomicBasis(f"{self.name}/{suffix}", chosen)

    def check_elements(self, numbers) -> None:
        """Raise ``ValueError`` naming every element of ``numbers`` this basis does not cover."""
        unknown = sorted(set(np.asarray(numbers).tolist()) - set(self.shells))
        if unknown:
            raise ValueError(
                f"basis {self.name!r} does not cover element(s) Z={unknown}; it covers Z={sorted(self.shells)}"
            )

    def atom_size(self, z: int) -> int:
        """Number of AOs on one atom of atomic number ``z``."""
        return sum(s.size for s in self.shells[int(z)])

    def shell_offsets(self, z: int) -> dict[Shell, int]:
        """AO offset of each shell inside one atom of atomic number ``z``."""
        return self._shell_offsets[int(z)]

    @cached_property
    def _shell_offsets(self) -> dict[int, dict[Shell, int]]:
        offsets = {}
        for z, shells in self.shells.items():
            sizes = [s.size for s in shells]
            offsets[z] = dict(zip(shells, np.cumsum([0] + sizes[:-1]).tolist(), strict=True))
        return offsets

    def atom_offsets(self, numbers) -> np.ndarray:
        """(n_atoms + 1,) AO offsets of each atom of a structure; the last entry is n_ao."""
        self.check_elements(numbers)
        return np.cumsum([0] + [self.atom_size(z) for z in np.asarray(numbers).tolist()])

    def n_ao(self, numbers) -> int:
        return int(self.atom_offsets(numbers)[-1])

    @cached_property
    def max_l(self) -> int:
        return max(s.l for shells in self.shells.values() for s in shells)

    def to_dict(self) -> dict:
        """Plain data (for checkpoints): {"name": str, "shells": {Z: [[n, l], ...]}}."""
        return {"name": self.name, "shells": {int(z): [[s.n, s.l] for s in v] for z, v in self.shells.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> AtomicBasis:
        return cls(data["name"], {int(z): tuple(Shell(n, l) for n, l in v) for z, v in data["shells"].items()})


@cache
def _pyscf_element_shells(basis: str, z: int) -> tuple[Shell, ...]:
    """Shells of element ``z`` in ``basis``, read from PySCF (``bas_angular``, ``bas_nctr``).
    Cached: building PySCF's one-atom molecule costs about 0.5 ms, and every overlap needs it."""
    from pyscf import gto

    symbol = gto.mole._symbol(z)
    try:
        mol = gto.M(atom=[[symbol, (0.0, 0.0, 0.0)]], basis=basis, spin=z % 2, verbose=0)
    except (KeyError, RuntimeError, ValueError, OSError) as err:
        raise ValueError(f"PySCF has no basis {basis!r} for element {symbol} (Z={z}): {err}") from err
    rank_per_l: dict[int, int] = {}
    shells = []
    for b in range(mol.nbas):
        l = int(mol.bas_angular(b))
        for _ in range(int(mol.bas_nctr(b))):
            shells.append(Shell(rank_per_l.get(l, 0), l))
            rank_per_l[l] = rank_per_l.get(l, 0) + 1
    if not shells:
        raise ValueError(f"PySCF basis {basis!r} has no functions for element {symbol} (Z={z})")
    return tuple(shells)


def pyscf_to_canonical(basis: AtomicBasis, numbers) -> np.ndarray:
    """Index array ``perm`` (n_ao,) with ``M_canonical = M_pyscf[perm][:, perm]``.

    Only p shells move: PySCF (px, py, pz) -> canonical (py, pz, px). The inverse permutation
    is ``np.argsort(perm)``.
    """
    perm = []
    offset = 0
    for z in np.asarray(numbers).tolist():
        for shell in basis.shells[int(z)]:
            order = _PYSCF_P_TO_CANONICAL if shell.l == 1 else range(shell.size)
            perm.extend(offset + m for m in order)
            offset += shell.size
    return np.asarray(perm, dtype=np.int64)


def shell_wigner(l: int, rotation: torch.Tensor) -> torch.Tensor:
    """(..., 2l+1, 2l+1) real Wigner matrix of a canonical shell of angular momentum ``l``.

    ``rotation`` (..., 3, 3) is a proper or improper rotation acting on positions. An AO shell
    has parity (-1)^l, so under inversion D_l(-I) = (-1)^l.
    """
    return irrep_wigner(l, (-1) ** l, rotation)


def irrep_wigner(l: int, parity: int, rotation: torch.Tensor) -> torch.Tensor:
    """(..., 2l+1, 2l+1) Wigner matrix, in canonical real-harmonic order, of the O(3) irrep
    (l, parity): for an improper rotation it carries the extra factor ``parity``.

    D is fitted, exactly, from Y_l(R v) = D Y_l(v) on fixed points v (float64 to ~1e-15; e3nn's
    own ``D_from_matrix`` builds its generators in the default dtype and is only float32-exact).
    """
    det = torch.linalg.det(rotation)
    proper = rotation * det.sign()[..., None, None]
    points = torch.randn(4 * l + 2, 3, generator=torch.Generator().manual_seed(l), dtype=torch.float64).to(rotation)
    harmonics = real_spherical_harmonics(l, points)
    rotated = real_spherical_harmonics(l, points @ proper.mT)
    wigner = torch.linalg.lstsq(harmonics.expand(rotated.shape), rotated).solution.mT
    sign = torch.where(det < 0, float(parity), 1.0).to(rotation)
    return wigner * sign[..., None, None]


def basis_wigner(basis: AtomicBasis, numbers, rotation: torch.Tensor) -> torch.Tensor:
    """(n_ao, n_ao) block-diagonal Wigner matrix of a whole structure's AO basis."""
    blocks = {l: shell_wigner(l, rotation) for l in range(basis.max_l + 1)}
    return torch.block_diag(*[blocks[s.l] for z in np.asarray(numbers).tolist() for s in basis.shells[int(z)]])


def real_spherical_harmonics(l: int, vectors: torch.Tensor) -> torch.Tensor:
    """(..., 2l+1) real spherical harmonics of ``vectors`` (..., 3), canonical m = -l..l order,
    normalized to the unit sphere ("integral" normalization), zero-safe (unit vectors inside).

    Law: Y_l(R r) = irrep_wigner(l, (-1)^l, R) Y_l(r) for any orthogonal R.
    """
    return o3.spherical_harmonics(l, vectors[..., [1, 2, 0]], normalize=True, normalization="integral")


@cache
def clebsch_gordan(l1: int, l2: int, lam: int) -> torch.Tensor:
    """(2l1+1, 2l2+1, 2lam+1) float64 real Clebsch-Gordan coefficients in canonical order,
    sqrt(2 lam + 1) * e3nn's 3j symbols, so the map (m1, m2) -> (lam, mu) over all lam is
    orthogonal. Law: sum_{m1 m2} C[m1, m2, :] (D_l1 a)_m1 (D_l2 b)_m2 = D_lam (C a b).

    e3nn's 3j symbols are float64-exact, and equivariant in canonical order because canonical
    harmonics are e3nn's evaluated on (y, z, x). Cached: treat the result as read-only.
    """
    return (2 * lam + 1) ** 0.5 * o3.wigner_3j(l1, l2, lam, dtype=torch.float64)


def real_spherical_harmonics_up_to(max_l: int, vectors: torch.Tensor) -> list[torch.Tensor]:
    """[Y_0, .., Y_max_l] of ``vectors`` (..., 3), each (..., 2l+1), as
    :func:`real_spherical_harmonics` but from one e3nn call (a call costs a module set-up)."""
    harmonics = o3.spherical_harmonics(
        list(range(max_l + 1)), vectors[..., [1, 2, 0]], normalize=True, normalization="integral"
    )
    return list(torch.split(harmonics, [2 * l + 1 for l in range(max_l + 1)], dim=-1))


def random_rotation(
    generator: torch.Generator | None = None, improper: bool = False, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """(3, 3) uniformly random rotation; with ``improper`` it is composed with inversion."""
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    rotation = o3.quaternion_to_matrix(q / q.norm()).to(dtype)
    return -rotation if improper else rotation
