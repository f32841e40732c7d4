"""The training domain of a model: which interatomic distances it has seen, and which new
structures lie outside them.

A model fitted on water whose O-H bonds span 0.84-1.16 Å knows nothing of an O-H bond of
1.69 Å: it extrapolates, with errors of hundreds of meV and no sign of it. :class:`TrainingDomain`
records, per kind of element pair (Z1 <= Z2), the shortest and longest distance of the training
structures within the model's cutoff, and flags a structure holding a pair of atoms closer than
the cutoff whose distance falls outside its kind's range widened by ``tolerance`` (a fraction of
the range's ends), or of a kind never seen within the cutoff. Pairs at or beyond the cutoff are
not checked: the features see no such pair.

Symmetry law: the flag depends only on the set of (pair kind, distance) of a structure, so it is
invariant under rotations, inversion, translations and permutations of the atoms; the reason
names the same pair kind and distance, its atom indices follow the permutation.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import ase
import ase.data
import numpy as np

from .errors import DataFileError, InputError

#: Default widening of every training range: 2 % of its ends (0.02 Å on a 1 Å bond).
DEFAULT_TOLERANCE = 0.02
#: Out-of-domain structures named in a warning; the rest are counted.
_NAMED_IN_WARNING = 3


class OutOfDomainWarning(UserWarning):
    """Predictions for structures outside the model's training domain (an extrapolation)."""


@dataclass(frozen=True)
class PairRange:
    """Distances (Å) between atoms of atomic numbers ``first`` <= ``second`` seen in training."""

    first: int
    second: int
    low: float
    high: float

    @property
    def name(self) -> str:
        """ "O-H", "C-O": as chemists write it (see :func:`_pair_name`)."""
        return _pair_name(self.first, self.second)


@dataclass(frozen=True)
class DomainReport:
    """One structure's check: ``index`` in the checked sequence, ``in_domain``, and ``reason``,
    one line naming the pair farthest outside (empty when in domain)."""

    index: int
    in_domain: bool
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TrainingDomain:
    """Per element pair the range of training distances within ``cutoff`` (Å); structures
    are in domain while every pair closer than ``cutoff`` lies within its kind's range, each end
    widened by ``tolerance`` times its value."""

    cutoff: float
    pairs: tuple[PairRange, ...]
    tolerance: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        if not self.cutoff > 0:
            raise InputError(f"training domain: cutoff must be > 0 Å, got {self.cutoff}")
        if not 0 <= self.tolerance < 1:
            raise InputError(
                f"training domain: tolerance is a fraction of the distances, 0 <= tolerance < 1, got {self.tolerance}"
            )

    @classmethod
    def from_frames(
        cls, frames: Sequence[ase.Atoms], cutoff: float, tolerance: float = DEFAULT_TOLERANCE
    ) -> TrainingDomain:
        """The domain of the training structures ``frames`` (positions in Å)."""
        if not frames:
            raise InputError("training domain: no training structures given")
        low: dict[tuple[int, int], float] = {}
        high: dict[tuple[int, int], float] = {}
        for atoms in frames:
            for kind, distances, _ in _pairs_by_kind(atoms, cutoff):
                low[kind] = min(low.get(kind, np.inf), float(distances.min()))
                high[kind] = max(high.get(kind, -np.inf), float(distances.max()))
        pairs = tuple(PairRange(z1, z2, low[(z1, z2)], high[(z1, z2)]) for z1, z2 in sorted(low))
        return cls(cutoff=float(cutoff), pairs=pairs, tolerance=tolerance)

    def check(self, frames: Sequence[ase.Atoms]) -> list[DomainReport]:
        """One report per structure of ``frames``, in order."""
        return [self._check_one(index, atoms) for index, atoms in enumerate(frames)]

    def _check_one(self, index: int, atoms: ase.Atoms) -> DomainReport:
        ranges = {(p.first, p.second): p for p in self.pairs}
        worst: list[tuple[float, tuple[int, int], float, int, int]] = []
        n_outside = 0
        for kind, distances, (i, j) in _pairs_by_kind(atoms, self.cutoff):
            excess = self._excess(ranges.get(kind), distances)
            n_outside += int((excess > 0).sum())
            k = int(np.argmax(excess))
            if excess[k] > 0:
                worst.append((float(excess[k]), kind, float(distances[k]), int(i[k]), int(j[k])))
        if not worst:
            return DomainReport(index, True)
        _, kind, distance, i, j = max(worst, key=lambda found: found[0])
        if atoms.numbers[i] != _written_order(*kind)[0]:
            i, j = j, i
        more = f" (and {n_outside - 1} more pair{'s' if n_outside > 2 else ''} outside)" if n_outside > 1 else ""
        return DomainReport(index, False, self._reason(kind, ranges.get(kind), distance, i, j) + more)

    def _excess(self, seen: PairRange | None, distances: np.ndarray) -> np.ndarray:
        """(n,) how far (Å) each distance of one pair kind lies outside its widened range: <= 0
        inside, inf for a kind never seen within the cutoff."""
        if seen is None:
            return np.full(len(distances), np.inf)
        return np.maximum(seen.low * (1 - self.tolerance) - distances, distances - seen.high * (1 + self.tolerance))

    def _reason(self, kind: tuple[int, int], seen: PairRange | None, distance: float, i: int, j: int) -> str:
        """One line on atoms i and j (in the order their pair kind is written) of ``kind``."""
        if seen is None:
            name = _pair_name(*kind)
            return (
                f"{name} distance {distance:.2f} Å (atoms {i}-{j}): no {name} pair closer than the cutoff "
                f"{self.cutoff:g} Å in the training structures"
            )
        return (
            f"{seen.name} distance {distance:.2f} Å (atoms {i}-{j}) outside the training range "
            f"{seen.low:.2f}-{seen.high:.2f} Å"
        )

    def to_dict(self) -> dict:
        """Plain data (floats, ints, lists) for a checkpoint."""
        return {
            "cutoff": self.cutoff,
            "tolerance": self.tolerance,
            "pairs": [[p.first, p.second, p.low, p.high] for p in self.pairs],
        }

    @classmethod
    def from_dict(cls, data: dict) -> TrainingDomain:
        """From :meth:`to_dict`'s data; ``DataFileError`` if it is damaged."""
        try:
            pairs = tuple(PairRange(int(z1), int(z2), float(low), float(high)) for z1, z2, low, high in data["pairs"])
            return cls(cutoff=float(data["cutoff"]), pairs=pairs, tolerance=float(data["tolerance"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DataFileError(
                f"the checkpoint's training domain is damaged ({err!r}): retrain the model or "
                "remove its 'domain' entry to predict unchecked"
            ) from err


def warn_out_of_domain(reports: Sequence[DomainReport] | None, frames: Sequence[ase.Atoms]) -> None:
    """One :class:`OutOfDomainWarning` naming the first few out-of-domain structures of
    ``reports`` (of ``frames``) and counting the rest; nothing when all are in domain or
    ``reports`` is None (a model that records no domain)."""
    outside = [report for report in reports or () if not report.in_domain]
    if not outside:
        return
    named = "; ".join(
        f"structure {r.index} ({frames[r.index].get_chemical_formula()}): {r.reason}"
        for r in outside[:_NAMED_IN_WARNING]
    )
    rest = f"; and {len(outside) - _NAMED_IN_WARNING} more" if len(outside) > _NAMED_IN_WARNING else ""
    warnings.warn(
        f"{summary(reports)}, predictions there are extrapolations: {named}{rest}", OutOfDomainWarning, stacklevel=3
    )


def summary(reports: Sequence[DomainReport]) -> str:
    """ "2 of 10 structures outside the training domain"."""
    return f"{sum(not r.in_domain for r in reports)} of {len(reports)} structures outside the training domain"


def _pairs_by_kind(
    atoms: ase.Atoms, cutoff: float
) -> Iterator[tuple[tuple[int, int], np.ndarray, tuple[np.ndarray, np.ndarray]]]:
    """Per element pair (Z1 <= Z2) present closer than ``cutoff``: (Z1, Z2), the distances (n,)
    of its atom pairs i < j, Å, and their atom indices ((n,) i, (n,) j)."""
    numbers, positions = np.asarray(atoms.numbers), np.asarray(atoms.positions, dtype=np.float64)
    i, j = np.triu_indices(len(numbers), k=1)
    distances = np.linalg.norm(positions[i] - positions[j], axis=1)
    close = distances < cutoff
    i, j, distances = i[close], j[close], distances[close]
    first, second = np.minimum(numbers[i], numbers[j]), np.maximum(numbers[i], numbers[j])
    for z1, z2 in sorted({(int(a), int(b)) for a, b in zip(first, second, strict=True)}):
        rows = (first == z1) & (second == z2)
        yield (z1, z2), distances[rows], (i[rows], j[rows])


def _pair_name(first: int, second: int) -> str:
    """ "O-H", "C-H", "C-O", "H-H"."""
    return "-".join(ase.data.chemical_symbols[z] for z in _written_order(first, second))


def _written_order(first: int, second: int) -> tuple[int, int]:
    """The two atomic numbers as chemists write the pair: the lighter element first, hydrogen last."""
    lighter, heavier = sorted((first, second))
    return (heavier, lighter) if lighter == 1 else (lighter, heavier)
