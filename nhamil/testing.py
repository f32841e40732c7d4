"""Equivariance checks for anything computed from a geometry: :func:`assert_equivariant`.

One helper checks every feature, head, model, baseline and reference of nhamil (and any a user
writes) against its symmetry law, under random transformations of the input geometry. A
transformation T of the atoms of one structure, positions x (n, 3) in Å, is

    x'_k = R x_perm[k] + t        (new atom k is old atom perm[k]),

and :func:`random_transformations` draws, per trial, one of each kind: ``"rotation"`` (random
proper R), ``"improper rotation"`` (inversion times a random rotation, R = -Q), ``"permutation"``
(a random non-identity perm of each structure's atoms), ``"translation"`` (random t, a few Å)
and ``"combined"`` (an improper rotation, a permutation and a translation at once). Inputs with no
positions (feature blocks fed to a head) get only the two rotation kinds.

The laws (y = f(x); what f(T x) must equal):

- :class:`AOMatrices` (basis): one AO matrix per structure, canonical AO order
  (:mod:`nhamil.orbitals`): F' = P_ao D F D^T P_ao^T, D = ``basis_wigner(basis, numbers, R)``
  (its shells carry parity (-1)^l), P_ao moving each atom's AOs with the atom; translations
  change nothing.
- :class:`Features` (:class:`~nhamil.features.EquivariantFeatures`): each (lam, sigma) block,
  (n, 2 lam + 1, f), goes to irrep_wigner(lam, sigma (-1)^lam, R) @ block on the mu axis; a
  sample (system, i, j[, k]) goes to the sample of the permuted atoms, (system, perm^-1(i), ...);
  features of a pair stored once per unordered pair take ``swap_sign`` when its atoms swap.
- :class:`Cartesian` (rank 1 or 2, per structure): v' = s R v, A' = s R A R^T, s = ``parity``
  for an improper R and 1 otherwise (polar vectors and ordinary tensors: parity +1).
- :data:`INVARIANT`: y' = y (eigenvalues, energies).

Tolerance: an output leaf (a matrix, a block) passes when max |f(T x) - T y| <= atol + rtol *
max |T y|; by default atol = 0 and rtol = 1e-10 for float64 outputs, 1e-4 for float32 (the dtype of
the output of the transformed input); the comparison is made in float64. The law of an object is
read from what it declares: an object with a ``basis`` (:class:`~nhamil.model.HamiltonianModel`)
gets :class:`AOMatrices`, a function returning :class:`~nhamil.features.EquivariantFeatures` gets
:class:`Features`.

Examples (each raises AssertionError naming the kind, trial, output and deviation on failure)::

    assert_equivariant(model, frames)                   # HamiltonianModel: the AO law of model.basis
    assert_equivariant(my_features, structures)         # Structures -> EquivariantFeatures
    assert_equivariant(fock, frames, basis=basis, atol=1e-8)            # a reference, SCF-converged
    assert_equivariant(head, EquivariantFeatures(samples, {(2, 1): x}))  # a head: rotated input blocks
    assert_equivariant(fitted.predict, frames, law=Cartesian(1))        # dipoles
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch

from nhamil.errors import InputError
from nhamil.features.container import EquivariantFeatures
from nhamil.orbitals import AtomicBasis, basis_wigner, irrep_wigner, random_rotation
from nhamil.structures import Structures

#: Every kind of transformation, in the order they are tried.
KINDS = ("rotation", "improper rotation", "permutation", "translation", "combined")
#: The kinds that apply to inputs without positions (equivariant feature blocks).
ROTATION_KINDS = ("rotation", "improper rotation")
#: Default relative tolerance of an output of each floating type.
DEFAULT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-1}
#: Scale (Å) of the random translations.
TRANSLATION_SCALE = 2.0


@dataclass(frozen=True)
class Transformation:
    """x'_k = R x_perm[k] + t for each structure. rotation (3, 3) float64, det +1 or -1;
    translation (3,) float64, Å; permutations: one (n_atoms,) index array per structure
    (``np.arange`` where atoms stay), empty for inputs without atoms."""

    kind: str
    rotation: torch.Tensor
    translation: torch.Tensor
    permutations: tuple[np.ndarray, ...]

    @property
    def improper(self) -> bool:
        return bool(torch.linalg.det(self.rotation) < 0)

    def positions(self, positions: torch.Tensor, structure: int) -> torch.Tensor:
        """(n, 3) moved positions of ``structure``, computed in float64, returned in the input's dtype."""
        moved = positions.double()[torch.as_tensor(self.permutations[structure], device=positions.device)]
        rotation, translation = self.rotation.to(positions.device), self.translation.to(positions.device)
        return (moved @ rotation.T + translation).to(positions.dtype)

    def atoms(self, atoms: ase.Atoms, structure: int) -> ase.Atoms:
        moved = atoms[self.permutations[structure]]
        moved.positions = self.positions(torch.as_tensor(atoms.positions), structure).numpy()
        return moved

    def structures(self, structures: Structures) -> Structures:
        order = torch.cat(
            [start + torch.as_tensor(perm) for start, perm in zip(structures.ptr[:-1], self.permutations, strict=True)]
        )
        positions = torch.cat(
            [
                self.positions(structures.positions[start:stop], s)
                for s, (start, stop) in enumerate(zip(structures.ptr[:-1], structures.ptr[1:], strict=True))
            ]
        )
        return Structures(
            positions, structures.numbers[order.to(structures.numbers.device)], structures.system, structures.ptr
        )

    def irrep(self, lam: int, parity: int) -> torch.Tensor:
        """(2 lam + 1, 2 lam + 1) float64 Wigner matrix of the O(3) irrep (lam, parity)."""
        return irrep_wigner(lam, parity, self.rotation)


def random_transformations(
    sizes: Sequence[int], *, kinds: Sequence[str] = KINDS, n_trials: int = 1, seed: int = 0
) -> list[Transformation]:
    """``n_trials`` transformations of each of ``kinds`` (see :data:`KINDS`) of structures of
    ``sizes`` atoms, float64, reproducible from ``seed``."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise InputError(f"unknown transformation kinds {unknown}: choose among {list(KINDS)}")
    generator = torch.Generator().manual_seed(seed)
    return [_draw(kind, sizes, generator) for _ in range(n_trials) for kind in kinds]


def _draw(kind: str, sizes: Sequence[int], generator: torch.Generator) -> Transformation:
    rotated, permuted = kind != "permutation" and kind != "translation", kind in ("permutation", "combined")
    rotation = (
        random_rotation(generator, improper=kind in ("improper rotation", "combined"))
        if rotated
        else torch.eye(3, dtype=torch.float64)
    )
    translation = (
        TRANSLATION_SCALE * torch.randn(3, generator=generator, dtype=torch.float64)
        if kind in ("translation", "combined")
        else torch.zeros(3, dtype=torch.float64)
    )
    permutations = tuple(_shuffle(n, generator) if permuted else np.arange(n) for n in sizes)
    return Transformation(kind, rotation, translation, permutations)


def _shuffle(n: int, generator: torch.Generator) -> np.ndarray:
    """A random permutation of n >= 2 items that moves some item (a cyclic shift if the draw does not)."""
    perm = torch.randperm(n, generator=generator).numpy()
    return np.roll(perm, 1) if n > 1 and (perm == np.arange(n)).all() else perm


# --- the laws ------------------------------------------------------------------------------------

Pairs = Iterator[tuple[str, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class AOMatrices:
    """One (n_ao, n_ao) AO matrix (or a tuple of them: Fock and overlap) per structure, in
    ``basis``' canonical order: F(T x) = P_ao D F(x) D^T P_ao^T, D = basis_wigner(basis, numbers, R)."""

    basis: AtomicBasis

    def pairs(self, original, moved, t: Transformation, numbers: list[np.ndarray] | None) -> Pairs:
        if numbers is None:
            raise InputError("AO matrices need the atomic numbers: pass ase.Atoms frames or Structures")
        for s, (before, after) in enumerate(zip(original, moved, strict=True)):
            wigner = basis_wigner(self.basis, numbers[s], t.rotation)
            offsets = self.basis.atom_offsets(numbers[s])
            order = np.concatenate([np.arange(offsets[a], offsets[a + 1]) for a in t.permutations[s]])
            for label, b, a in _leaves(before, after, f"structure {s}"):
                yield label, a, (wigner @ b @ wigner.T)[order][:, order]


@dataclass(frozen=True)
class Features:
    """:class:`EquivariantFeatures`: block(T x)[sample'] = swap * irrep_wigner(lam, sigma (-1)^lam, R)
    @ block(x)[sample] on the mu axis, sample' the sample of the moved atoms. ``swap_sign``: the sign a
    pair block takes when its two atoms swap (+1 for plus, -1 for minus features, stored once per
    unordered pair); None: a swapped pair is a different sample."""

    swap_sign: int | None = None

    def pairs(self, original, moved, t: Transformation, numbers: list[np.ndarray] | None) -> Pairs:
        if not isinstance(original, EquivariantFeatures) or not isinstance(moved, EquivariantFeatures):
            raise InputError(f"the Features law needs EquivariantFeatures outputs, got {type(original).__name__}")
        if set(moved.blocks) != set(original.blocks):
            raise AssertionError(
                f"{t.kind}: block keys changed from {sorted(original.blocks)} to {sorted(moved.blocks)}"
            )
        rows, signs = _matching_rows(original.samples, moved.samples, t, self.swap_sign)
        for (lam, sigma), block in original.blocks.items():
            turned = torch.einsum("mn,pnf->pmf", t.irrep(lam, sigma * (-1) ** lam), _float64(block)[rows])
            yield f"block {(lam, sigma)}", moved.blocks[lam, sigma], signs[:, None, None] * turned


def _matching_rows(
    original: torch.Tensor, moved: torch.Tensor, t: Transformation, swap_sign: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, signs): moved sample r is original sample rows[r] (its pair swapped where signs[r] = swap_sign)."""
    original, moved = original.cpu(), moved.cpu()
    if len(moved) != len(original):
        raise AssertionError(f"{t.kind}: the number of samples changed from {len(original)} to {len(moved)}")
    mapped = moved.clone()
    if t.permutations:
        starts = np.cumsum([0] + [len(p) for p in t.permutations])
        old_local = torch.as_tensor(np.concatenate(t.permutations))
        mapped[:, 1:] = old_local[torch.as_tensor(starts)[moved[:, :1]] + moved[:, 1:]]
    index = {tuple(row): r for r, row in enumerate(original.tolist())}
    rows, signs = [], []
    for row in mapped.tolist():
        swapped = (row[0], row[2], row[1], *row[3:])
        if tuple(row) in index or swap_sign is None or swapped not in index:
            if tuple(row) not in index:
                raise AssertionError(
                    f"{t.kind}: sample {tuple(row)} (moved atoms mapped back) is not a sample of the original input"
                )
            rows.append(index[tuple(row)]), signs.append(1.0)
        else:
            rows.append(index[swapped]), signs.append(float(swap_sign))
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(signs, dtype=torch.float64)


@dataclass(frozen=True)
class Cartesian:
    """Per-structure Cartesian vectors (..., 3) (``rank`` 1) or rank-2 tensors (..., 3, 3):
    v(T x) = s R v(x), A(T x) = s R A(x) R^T, s = ``parity`` for improper R (-1: axial), else 1;
    permutations and translations change nothing."""

    rank: int
    parity: int = 1

    def pairs(self, original, moved, t: Transformation, numbers: list[np.ndarray] | None) -> Pairs:
        if self.rank not in (1, 2):
            raise InputError(f"Cartesian rank must be 1 (vectors) or 2 (tensors), got {self.rank}")
        sign = self.parity if t.improper else 1
        for label, b, a in _leaves(original, moved, "output"):
            turned = b @ t.rotation.T if self.rank == 1 else t.rotation @ b @ t.rotation.T
            yield label, a, sign * turned


@dataclass(frozen=True)
class Invariant:
    """Outputs that no transformation changes: y(T x) = y(x)."""

    def pairs(self, original, moved, t: Transformation, numbers: list[np.ndarray] | None) -> Pairs:
        for label, b, a in _leaves(original, moved, "output"):
            yield label, a, b


INVARIANT = Invariant()


def _float64(value) -> torch.Tensor:
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    return tensor.cpu().to(torch.float64)


def _leaves(before, after, label: str) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """(label, before, after) of each tensor in two nested tuples/lists of tensors or arrays;
    ``after`` keeps its dtype (the tolerance is read from it), ``before`` is float64."""
    if isinstance(before, (tuple, list)):
        if len(before) != len(after):
            raise AssertionError(f"{label}: {len(before)} outputs became {len(after)}")
        for k, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _leaves(b, a, f"{label}[{k}]")
    else:
        yield label, _float64(before), after


# --- the check -----------------------------------------------------------------------------------

Law = AOMatrices | Features | Cartesian | Invariant


def assert_equivariant(
    function,
    inputs,
    *,
    law: Law | tuple[Law, ...] | None = None,
    basis: AtomicBasis | None = None,
    kinds: Sequence[str] | None = None,
    n_trials: int = 1,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    allow_zero: bool = False,
) -> dict[str, float]:
    """Assert that ``function(T inputs)`` equals T applied to ``function(inputs)`` for random T.

    function: a callable, or an object with ``predict`` (and a ``basis``: a Hamiltonian model).
    inputs: ase.Atoms or a list of them, :class:`Structures`, positions (m, n, 3) Å of m frames of
    one molecule, or :class:`EquivariantFeatures` (a head's input: rotations only). ``function``
    gets the transformed inputs in the same form. law: see the module docstring; a tuple of laws
    for a tuple of outputs; None: read from ``function``'s ``basis`` (or ``basis``) or from an
    EquivariantFeatures output. kinds: default every kind that applies to ``inputs``. atol, rtol:
    per output leaf, error <= atol + rtol * scale; give one and the other is 0; neither: rtol from
    the output's dtype (:data:`DEFAULT_RTOL`). allow_zero: accept an output leaf that is zero
    everywhere (by default an error: the check would prove nothing).

    Returns the largest deviation max |f(T x) - T y| seen for each kind. Raises AssertionError
    naming each failing kind and trial, the output leaf and its deviation.
    """
    __tracebackhide__ = True
    errors = equivariance_errors(
        function,
        inputs,
        law=law,
        basis=basis,
        kinds=kinds,
        n_trials=n_trials,
        seed=seed,
        atol=atol,
        rtol=rtol,
        allow_zero=allow_zero,
    )
    failures = [line for _, line in errors.values() if line]
    if failures:
        raise AssertionError("not equivariant: " + "; ".join(failures))
    return {kind: deviation for kind, (deviation, _) in errors.items()}


def equivariance_errors(
    function,
    inputs,
    *,
    law=None,
    basis=None,
    kinds=None,
    n_trials: int = 1,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    allow_zero: bool = False,
) -> dict[str, tuple[float, str]]:
    """kind -> (largest deviation, description of the worst failure or ""), as :func:`assert_equivariant`."""
    call, law = _resolve(function, law, basis)
    sizes, numbers = _sizes_and_numbers(inputs)
    kinds = tuple(kinds or (KINDS if sizes is not None else ROTATION_KINDS))
    if sizes is None and set(kinds) - set(ROTATION_KINDS):
        raise InputError(
            f"inputs of type {type(inputs).__name__} have no atoms: only kinds {list(ROTATION_KINDS)} apply"
        )
    original = call(inputs)
    law = law if law is not None else _inferred(original)
    errors: dict[str, tuple[float, str]] = {}
    for trial, t in enumerate(random_transformations(sizes or [], kinds=kinds, n_trials=n_trials, seed=seed)):
        moved = call(_transformed(inputs, t))
        for label, actual, expected in _law_pairs(law, original, moved, t, numbers):
            deviation, line = _compare(label, actual, expected, atol, rtol, allow_zero)
            worst, worst_line = errors.get(t.kind, (0.0, ""))
            line = line and f"{t.kind} (trial {trial // len(kinds)}) {line}"
            errors[t.kind] = (max(worst, deviation), worst_line or line)
    return errors


def _resolve(function, law, basis) -> tuple[Callable, Law | tuple[Law, ...] | None]:
    call = function if callable(function) else getattr(function, "predict", None)
    if call is None:
        raise InputError(f"{type(function).__name__} is neither callable nor has a predict method")
    declared = basis if basis is not None else getattr(function, "basis", None)
    if law is None and isinstance(declared, AtomicBasis):
        law = AOMatrices(declared)
    return call, law


def _inferred(output) -> Law:
    if isinstance(output, EquivariantFeatures):
        return Features()
    raise InputError(
        f"cannot read the symmetry law of a {type(output).__name__} output: pass law=AOMatrices(basis), "
        "Features(), Cartesian(rank) or INVARIANT"
    )


def _law_pairs(law, original, moved, t: Transformation, numbers) -> Pairs:
    if not isinstance(law, tuple):
        yield from law.pairs(original, moved, t, numbers)
        return
    if not isinstance(original, tuple) or len(original) != len(law):
        raise InputError(f"{len(law)} laws need a tuple of {len(law)} outputs, got a {type(original).__name__}")
    for k, (part, before, after) in enumerate(zip(law, original, moved, strict=True)):
        for label, actual, expected in part.pairs(before, after, t, numbers):
            yield f"output {k} {label}", actual, expected


def _sizes_and_numbers(inputs) -> tuple[list[int] | None, list[np.ndarray] | None]:
    """Atoms per structure and their atomic numbers (None for positions arrays), or (None, None)."""
    if isinstance(inputs, ase.Atoms):
        return [len(inputs)], [inputs.numbers]
    if isinstance(inputs, Structures):
        ptr = inputs.ptr.tolist()
        return np.diff(ptr).tolist(), [
            inputs.numbers[a:b].cpu().numpy() for a, b in zip(ptr[:-1], ptr[1:], strict=True)
        ]
    if isinstance(inputs, EquivariantFeatures):
        return None, None
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        if inputs.ndim != 3 or inputs.shape[-1] != 3:
            raise InputError(f"positions must be (m frames, n atoms, 3), got shape {tuple(inputs.shape)}")
        return [inputs.shape[1]] * inputs.shape[0], None
    if isinstance(inputs, Sequence) and inputs and all(isinstance(a, ase.Atoms) for a in inputs):
        return [len(a) for a in inputs], [a.numbers for a in inputs]
    raise InputError(
        f"cannot transform inputs of type {type(inputs).__name__}: pass ase.Atoms (or a list), "
        "Structures, positions (m, n, 3) or EquivariantFeatures"
    )


def _transformed(inputs, t: Transformation):
    if isinstance(inputs, ase.Atoms):
        return t.atoms(inputs, 0)
    if isinstance(inputs, Structures):
        return t.structures(inputs)
    if isinstance(inputs, EquivariantFeatures):
        return EquivariantFeatures(
            inputs.samples,
            {
                (lam, sigma): torch.einsum("mn,pnf->pmf", t.irrep(lam, sigma * (-1) ** lam).to(block), block)
                for (lam, sigma), block in inputs.blocks.items()
            },
        )
    if isinstance(inputs, np.ndarray):
        return np.stack([t.positions(torch.as_tensor(p), k).numpy() for k, p in enumerate(inputs)])
    if isinstance(inputs, torch.Tensor):
        return torch.stack([t.positions(p, k) for k, p in enumerate(inputs)])
    return type(inputs)(t.atoms(a, k) for k, a in enumerate(inputs))


def _compare(
    label: str, actual, expected: torch.Tensor, atol: float | None, rtol: float | None, allow_zero: bool
) -> tuple[float, str]:
    """(max deviation, "" or a description of the failure) of one output leaf."""
    dtype = actual.dtype if isinstance(actual, torch.Tensor) else torch.as_tensor(np.asarray(actual)).dtype
    actual = _float64(actual)
    if actual.shape != expected.shape:
        return float("inf"), f"{label}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    if scale == 0.0 and not allow_zero:
        return float("inf"), f"{label}: zero everywhere, the check would prove nothing (allow_zero=True to accept)"
    if atol is None and rtol is None:
        atol, rtol = 0.0, DEFAULT_RTOL.get(dtype, DEFAULT_RTOL[torch.float64])
    allowed = (atol or 0.0) + (rtol or 0.0) * scale
    deviation = float((actual - expected).abs().max()) if actual.numel() else 0.0
    if not deviation <= allowed:
        return deviation, f"{label}: max deviation {deviation:.3e} > allowed {allowed:.3e} (scale {scale:.3e})"
    return deviation, ""
