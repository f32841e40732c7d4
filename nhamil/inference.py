"""Fast prediction for one or a few molecules of one composition: everything that does not depend
on the geometry is computed once.

:class:`Predictor` is built from a fitted :class:`~nhamil.model.HamiltonianModel` and the atomic
numbers of a composition (in order). It keeps the matrix layout, the pair lists, the head outputs'
maps to matrix elements and the destinations of every element in the flat matrix, and for linear
heads (ridge, minibatch) the weights of every group of atom pairs folded together: the + and -
kinds of an element pair, the (f_ij +- f_ji) / sqrt 2 symmetrization and, for pairs of different
elements, the concatenation [f_ij, f_ji] become two matrix products of the features of the two
directions, so the symmetrized and concatenated features are never written out. Per call only the
geometry-dependent work runs: densities, Clebsch-Gordan products, one product per block with the
folded weights, one product with the element map per group, one scatter.

Symmetry law (the model's): ``predict(P R x) = P_ao D F(x) D^T P_ao^T`` for proper and improper
rotations R and permutations P of the atoms (within the composition's own order of elements),
to float64 round-off; the predictions equal :meth:`HamiltonianModel.predict` to 1e-10 Ha in
float64 (the same features and weights, summed in another order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import ase
import numpy as np
import torch

from .blocks import ON_SITE, MatrixLayout, PairKind
from .blocks.assembly import element_destinations, group_of, layout_groups
from .blocks.keys import HETERO, MINUS
from .errors import InputError
from .features.density import density_expansion
from .features.families import pair_features
from .features.harmonics import packed_real_harmonics
from .features.radial import cutoff_function, radial_integrals
from .heads import LinearFit
from .orbitals import clebsch_gordan
from .structures import Structures, check_geometries

_SQRT_HALF = math.sqrt(0.5)


@dataclass(frozen=True)
class _FoldedBlock:
    """The weights of one (lambda, sigma) block of one group: outputs (n, 2 lambda + 1, t) =
    X_forward @ forward + X_backward @ backward + bias (pairs), or X @ forward + bias (on-site)."""

    key: tuple[int, int]
    forward: torch.Tensor
    backward: torch.Tensor | None
    bias: torch.Tensor


class Predictor:
    """Predicted matrices (Hartree, canonical AO order) of one composition ``numbers``.

    ``model``: a fitted model. ``dtype``: float64 (exactly the model's predictions) or float32
    (features and heads; the baseline stays float64). ``device``: where the work runs (the model's
    weights are copied there once). :meth:`predict` takes positions (n_atoms, 3) or a few
    geometries (n_geometries, n_atoms, 3), Å, atoms in the order of ``numbers``.
    Raises ``InputError`` for elements or atom pairs the model was not trained on.
    """

    def __init__(
        self,
        model,
        numbers: Sequence[int],
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ):
        if not model.heads:
            raise InputError("the model is not fitted: train it (nhamil.train) before building a Predictor")
        if model.pair_cutoff is not None:
            raise InputError(
                f"the model has pair_cutoff={model.pair_cutoff} Å, so its atom pairs change with the geometry; "
                "a Predictor fixes them per composition: use model.predict"
            )
        self.model, self.dtype, self.device = model, dtype, torch.device(device)
        self.numbers = np.asarray(numbers, dtype=np.int64)
        probe = ase.Atoms(numbers=self.numbers, positions=np.arange(3 * len(self.numbers)).reshape(-1, 3) * 1.5)
        try:
            model.check_atom_pairs([probe])
        except ValueError as err:
            raise InputError(f"composition {probe.get_chemical_formula()}: {err}") from err
        self._transforms: dict[PairKind, torch.Tensor] = {}
        self._linear = all(isinstance(fit, LinearFit) for _, fit in model.heads.values())
        self._plan = self._pair_plan() if self._linear else None
        self._groups = self._folded_groups() if self._linear else {}
        self._layouts: dict[int, _Layout] = {}

    @property
    def linear(self) -> bool:
        """Whether every head is linear, so that the folded path runs (otherwise the model's)."""
        return self._linear

    def predict(self, positions, baseline: bool = True) -> torch.Tensor:
        """(n_ao, n_ao) matrix for positions (n_atoms, 3), or (n_geometries, n_ao, n_ao) for
        (n_geometries, n_atoms, 3), Å, on the predictor's device, in its dtype (float64 when a
        baseline is added). ``baseline``: add the model's baseline, if it has one (the PySCF
        part, ~8 ms for ethanol on one core)."""
        coordinates = torch.as_tensor(np.asarray(positions, dtype=np.float64))
        single = coordinates.ndim == 2
        coordinates = coordinates[None] if single else coordinates
        if coordinates.ndim != 3 or coordinates.shape[1:] != (len(self.numbers), 3):
            raise InputError(
                f"positions have shape {tuple(coordinates.shape)}; give (n_atoms, 3) or (n_geometries, n_atoms, 3) "
                f"with n_atoms = {len(self.numbers)}, the atoms of the predictor's composition in order"
            )
        frames = [ase.Atoms(numbers=self.numbers, positions=c.numpy()) for c in coordinates]
        check_geometries(frames)
        matrices = self._learned(frames)
        if baseline and self.model.baseline is not None:
            bases = self.model.baselines(frames).matrices
            matrices = matrices.to(torch.float64) + torch.as_tensor(np.stack(bases), device=matrices.device)
        return matrices[0] if single else matrices

    def _learned(self, frames: list[ase.Atoms]) -> torch.Tensor:
        """(n_geometries, n_ao, n_ao) learned part of the matrices of ``frames``."""
        layout = self._layout(len(frames))
        structures = Structures.from_atoms(frames, dtype=self.dtype, device=self.device)
        values = self._folded_values(structures, layout) if self._linear else self._model_values(structures, layout)
        flat = values.new_empty(layout.n_elements)
        flat[layout.destinations] = values
        return flat.view(len(frames), layout.n_ao, layout.n_ao)

    def _model_values(self, structures: Structures, layout: _Layout) -> torch.Tensor:
        """Every group's matrix elements by the model's own features and heads (any head kind)."""
        features = self.model.featurizer.compute(structures, layout.matrix.pairs())
        return torch.cat([self.model._predict_group(group, features).reshape(-1) for group in layout.rows])

    def _transform(self, group: PairKind) -> torch.Tensor:
        """The group's (K, E) map from the model's head outputs (in its order) to matrix elements,
        on the predictor's device and in its dtype; computed once."""
        if group not in self._transforms:
            self._transforms[group] = self.model._transform(group).to(self.device, self.dtype)
        return self._transforms[group]

    def _folded_values(self, structures: Structures, layout: _Layout) -> torch.Tensor:
        """Every group's matrix elements through the folded weights, in the order of the layout's
        destinations."""
        featurizer = self.model.featurizer
        rho = _density(featurizer, structures)
        values = []
        pairs, starts = self._pair_blocks(featurizer, structures, layout, rho) if layout.n_pairs else (None, None)
        for group, rows in layout.rows.items():
            folded = self._groups[group]
            if group.block_type == ON_SITE:
                onsite = self._onsite_blocks(structures, rho, rows, folded)
                outputs = [_apply(onsite[block.key], None, block) for block in folded.blocks]
            else:
                outputs = [
                    _apply(*(_rows(pairs, starts, block.key, direction) for direction in rows), block)
                    for block in folded.blocks
                ]
            values.append((torch.cat([out.flatten(1) for out in outputs], dim=1) @ folded.transform).reshape(-1))
        return torch.cat(values)

    def _onsite_blocks(self, structures: Structures, rho: dict, atoms: torch.Tensor, folded: _FoldedGroup) -> dict:
        """(lam, sigma) -> (n, 2 lam + 1, q) on-site features of ``atoms`` (global indices, one
        element), up to the highest lambda that element's heads use (the features of a block do
        not depend on how far lambda goes); with message passing, the model's features of all atoms."""
        featurizer = self.model.featurizer
        settings = featurizer.settings
        if settings.message_passing:
            return {key: block[atoms] for key, block in featurizer._onsite_features(structures, rho).blocks.items()}
        own = {l: block.index_select(0, atoms) for l, block in rho.items()}
        return featurizer.onsite_blocks(own, max(block.key[0] for block in folded.blocks))

    def _pair_blocks(self, featurizer, structures: Structures, layout: _Layout, rho: dict) -> tuple[dict, dict]:
        """((lam, sigma) -> (2 n_pairs - start, 2 lam + 1, q) pair features of the pairs of the
        layout's rows from ``start`` on, {(lam, sigma): start}): through the plan for order-1
        pair features (each block only for the groups from the first that uses it), else
        :func:`~nhamil.features.families.pair_features` (every row, start 0)."""
        settings = featurizer.settings
        if self._plan is not None:
            density = settings.density
            positions = structures.positions
            vectors = positions.index_select(0, layout.second) - positions.index_select(0, layout.first)
            lengths = vectors.norm(dim=-1)
            harmonics = packed_real_harmonics(density.max_angular, vectors, lengths)
            harmonics = harmonics * cutoff_function(lengths, density)[:, None]
            radial = radial_integrals(lengths, density)
            return self._plan.features(rho, harmonics, radial, layout.first, layout.key_start), layout.key_start
        return pair_features(
            structures,
            featurizer.species,
            settings.density,
            layout.both_directions,
            max_lambda=featurizer.max_lambda,
            correlation_order=settings.pair_correlation_order,
            both_centres=settings.both_centres,
            contractions=featurizer.contractions,
            density=rho,
        ).blocks, {}

    def _layout(self, n_geometries: int) -> _Layout:
        """The cached layout of ``n_geometries`` copies of the composition."""
        if n_geometries not in self._layouts:
            needs = {group: {block.key for block in folded.blocks} for group, folded in self._groups.items()}
            self._layouts[n_geometries] = _Layout.build(
                self.model.basis, self.numbers, n_geometries, needs, self.device
            )
        return self._layouts[n_geometries]

    def _pair_plan(self) -> _PairPlan | None:
        """The plan of the order-1 pair features (None for other pair features)."""
        settings, featurizer = self.model.features, self.model.featurizer
        if settings.pair_correlation_order != 1 or settings.both_centres:
            return None
        density = settings.density
        n_density = len(featurizer.species) * density.max_radial
        return _PairPlan.build(
            density.max_angular, featurizer.max_lambda, n_density, density.max_radial, self.dtype, self.device
        )

    def _folded_groups(self) -> dict[PairKind, _FoldedGroup]:
        """The folded weights and element map of every group of the composition."""
        layout = MatrixLayout.from_numbers(self.model.basis, [self.numbers])
        return {group: self._fold_group(group) for group in layout_groups(layout)}

    def _fold_group(self, group: PairKind) -> _FoldedGroup:
        """One group's heads folded per (lambda, sigma): their outputs side by side, + kind first,
        with the rows of the model's element map reordered to match."""
        heads = [(kind, eq, fit) for (kind, eq), (_, fit) in self.model.heads.items() if group_of(kind) == group]
        transform = self._transform(group)
        starts = np.cumsum([0] + [(2 * eq[0] + 1) * fit.weights.shape[1] for _, eq, fit in heads])
        blocks, order = [], []
        for key in sorted({eq for _, eq, _ in heads}):
            chosen = [(index, head) for index, head in enumerate(heads) if head[1] == key]
            blocks.append(self._fold_block(group, key, [head for _, head in chosen]))
            order.append(_output_rows(key, [(starts[index], head[2].weights.shape[1]) for index, head in chosen]))
        rows = torch.as_tensor(np.concatenate(order))
        return _FoldedGroup(blocks, transform[rows.to(transform.device)])

    def _fold_block(self, group: PairKind, key: tuple[int, int], heads: list) -> _FoldedBlock:
        """The weights of the heads of one (lambda, sigma) block of ``group`` (kinds in ``heads``
        order) acting on the unsymmetrized features of both directions."""
        forward, backward, bias = [], [], []
        order = None if group.block_type == ON_SITE or self._plan is None else self._plan.order(key)
        for kind, _, fit in heads:
            weights = fit.weights / fit.scale[:, None]
            bias.append(fit.intercept - fit.feature_mean @ weights)
            if order is not None:
                weights = weights.view(-1, len(order), weights.shape[1])[:, order].flatten(0, 1)
            if kind.block_type == ON_SITE:
                forward.append(weights)
            elif kind.block_type == HETERO:
                half = weights.shape[0] // 2
                forward.append(weights[:half])
                backward.append(weights[half:])
            else:
                sign = -1.0 if kind.block_type == MINUS else 1.0
                forward.append(_SQRT_HALF * weights)
                backward.append(sign * _SQRT_HALF * weights)
        move = {"device": self.device, "dtype": self.dtype}
        return _FoldedBlock(
            key,
            torch.cat(forward, dim=1).to(**move),
            torch.cat(backward, dim=1).to(**move) if backward else None,
            torch.cat(bias).to(**move),
        )


@dataclass(frozen=True)
class _FoldedGroup:
    """The folded blocks of one group and the (K, E) map from their outputs to its elements."""

    blocks: list[_FoldedBlock]
    transform: torch.Tensor


@dataclass(frozen=True)
class _Layout:
    """What a batch of geometries of one composition needs and that never changes: the matrix
    layout; each group's rows among the atoms (on-site) or, for pairs, its (forward, backward)
    rows among the pairs of both directions, those of one group together, groups that use fewer
    feature blocks first; those pairs (system, i, j) and their global atoms ``first`` and
    ``second``; from which row on each feature block is used (``key_start``, for linear heads);
    where each group's elements go in the flat vector of all matrices."""

    matrix: MatrixLayout
    rows: dict[PairKind, torch.Tensor | tuple[slice, slice]]
    both_directions: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    key_start: dict[tuple[int, int], int]
    n_pairs: int
    has_onsite: bool
    destinations: torch.Tensor
    n_ao: int
    n_elements: int

    @classmethod
    def build(cls, basis, numbers: np.ndarray, n: int, needs: dict, device: torch.device) -> _Layout:
        """``n`` copies of ``numbers``; ``needs`` {group: feature keys its heads use}."""
        matrix = MatrixLayout.from_numbers(basis, [numbers] * n)
        groups = layout_groups(matrix)
        pair_groups = sorted((g for g in groups if g.block_type != ON_SITE), key=lambda g: len(needs.get(g, ())))
        rows: dict = {g: torch.as_tensor(matrix.atom_ptr[s[:, 0]] + s[:, 1], device=device) for g, s in groups.items()}
        both, start, key_start = [], 0, {}
        for group in pair_groups:
            samples = groups[group]
            both.extend([samples, samples[:, [0, 2, 1]]])
            rows[group] = (slice(start, start + len(samples)), slice(start + len(samples), start + 2 * len(samples)))
            for key in needs.get(group, ()):
                key_start.setdefault(key, start)
            start += 2 * len(samples)
        both = np.concatenate(both) if both else np.zeros((0, 3), dtype=np.int64)
        first, second = (torch.as_tensor(matrix.atom_ptr[both[:, 0]] + both[:, k], device=device) for k in (1, 2))
        destinations = torch.cat([element_destinations(matrix, g, s).reshape(-1) for g, s in groups.items()])
        n_ao = int(matrix.n_ao[0])
        return cls(
            matrix,
            rows,
            torch.as_tensor(both, device=device),
            first,
            second,
            key_start,
            len(both) // 2,
            any(group.block_type == ON_SITE for group in groups),
            destinations.to(device),
            n_ao,
            n * n_ao * n_ao,
        )


def _rows(blocks: dict, starts: dict, key: tuple[int, int], rows: slice) -> torch.Tensor:
    """Rows ``rows`` (of all pairs) of block ``key`` that holds the rows from ``starts[key]`` on."""
    start = starts.get(key, 0)
    return blocks[key][rows.start - start : rows.stop - start]


def _density(featurizer, structures: Structures) -> dict:
    """The atom densities rho_i of ``structures`` for ``featurizer``'s species and settings."""
    return density_expansion(structures, featurizer.species, featurizer.settings.density)


def _apply(forward: torch.Tensor, backward: torch.Tensor | None, block: _FoldedBlock) -> torch.Tensor:
    """(n, 2 lam + 1, t) outputs of one folded block from the features of both directions."""
    outputs = torch.matmul(forward, block.forward).add_(block.bias)
    if backward is not None:
        outputs.add_(torch.matmul(backward, block.backward))
    return outputs


def _output_rows(key: tuple[int, int], heads: list[tuple[int, int]]) -> np.ndarray:
    """Rows of the model's element map, in the order of a folded block's flattened outputs
    (n, 2 lambda + 1, sum t): for each mu, the targets of each head (start row, t) in turn; the
    model's rows of one head run mu-major over its own t targets."""
    size = 2 * key[0] + 1
    return np.concatenate(
        [np.concatenate([start + mu * t + np.arange(t) for start, t in heads]) for mu in range(size)]
    ).astype(np.int64)


@dataclass(frozen=True)
class _Product:
    """One Clebsch-Gordan product rho_i^(l1) (x) g_ij^(l2) of the pair features: ``coefficients``
    (m2, M m1) for every lam of ``outputs`` (stacked along M), each (lam, key, first feature,
    first of its M rows)."""

    l1: int
    l2: int
    coefficients: torch.Tensor
    outputs: list[tuple[int, tuple[int, int], int, int]]


@dataclass(frozen=True)
class _PairPlan:
    """Where every part of the order-1 pair features |rho_ij^0>, |rho_ij^1> lands in its block:
    ``sizes`` {key: features}, ``zeroth`` [(l, first feature)] of g_ij itself, ``products``;
    ``n_density`` channels of rho_i, ``n_radial`` of g_ij. Blocks and parts come in the order of
    :func:`nhamil.features.families.pair_features`, the channels of a product in the order of
    :meth:`order`."""

    sizes: dict[tuple[int, int], int]
    zeroth: list[tuple[int, int]]
    products: list[_Product]
    n_density: int
    n_radial: int

    @classmethod
    def build(cls, max_angular: int, max_lambda: int, n_density: int, n_radial: int, dtype, device) -> _PairPlan:
        sizes: dict[tuple[int, int], int] = {}

        def place(key: tuple[int, int], width: int) -> int:
            start = sizes.get(key, 0)
            sizes[key] = start + width
            return start

        zeroth = [(l, place((l, 1), n_radial)) for l in range(min(max_angular, max_lambda) + 1)]
        products = []
        for l1 in range(max_angular + 1):
            for l2 in range(max_angular + 1):
                lambdas = range(abs(l1 - l2), min(l1 + l2, max_lambda) + 1)
                if not lambdas:
                    continue
                outputs, row = [], 0
                for lam in lambdas:
                    key = (lam, (-1) ** (l1 + l2 + lam))
                    outputs.append((lam, key, place(key, n_density * n_radial), row))
                    row += 2 * lam + 1
                stacked = torch.cat([clebsch_gordan(l1, l2, lam) for lam in lambdas], dim=-1)  # (m1, m2, M)
                coefficients = stacked.permute(1, 2, 0).reshape(2 * l2 + 1, -1)  # (m2, M m1)
                products.append(_Product(l1, l2, coefficients.to(device, dtype), outputs))
        return cls(sizes, zeroth, products, n_density, n_radial)

    def features(
        self, rho: dict, harmonics: torch.Tensor, radial: torch.Tensor, first: torch.Tensor, key_start: dict
    ) -> dict:
        """(lam, sigma) -> (n - key_start[key], 2 lam + 1, q) features of the last rows of n
        ordered pairs, only for the keys of ``key_start``, in the order of :meth:`order`:
        ``harmonics`` (n, (L + 1)^2) the cutoff-weighted Y_lm of each pair's vector, ``radial``
        (n, L + 1, n_radial) its I_nl, ``first`` (n,) the first atoms (global) whose densities
        ``rho`` they couple with. g_ij = Y (x) I factorizes, so each product is the coupling of
        rho_i with Y alone (the coefficients times Y, then a product over m1) times I, written
        once into its final block with the density channels innermost."""
        n = len(first)
        blocks = {
            key: harmonics.new_empty(n - start, 2 * key[0] + 1, self.sizes[key]) for key, start in key_start.items()
        }
        n_radial = radial.shape[-1]
        for l, start in self.zeroth:
            if (l, 1) in blocks:
                rows = slice(key_start[(l, 1)], n)
                target = blocks[(l, 1)][:, :, start : start + n_radial]
                torch.mul(harmonics[rows, l * l : (l + 1) ** 2, None], radial[rows, None, l], out=target)
        selected = {l: block.index_select(0, first) for l, block in rho.items()}
        for product in self.products:
            used = [output for output in product.outputs if output[1] in blocks]
            if not used:
                continue
            begin = min(key_start[output[1]] for output in used)
            density = selected[product.l1][begin:]  # (m, m1, c1)
            m, n_density = len(density), density.shape[2]
            own = harmonics[begin:, product.l2**2 : (product.l2 + 1) ** 2]  # (m, m2)
            angular = (own @ product.coefficients).view(m, -1, density.shape[1])  # (m, M, m1)
            coupled = torch.bmm(angular, density)  # (m, M, c1)
            r = radial[begin:, None, product.l2, :, None]  # (m, 1, c2, 1)
            for lam, key, start, row in used:
                skip = key_start[key] - begin
                target = blocks[key][:, :, start : start + n_density * n_radial].view(
                    m - skip, 2 * lam + 1, n_radial, -1
                )
                torch.mul(coupled[skip:, row : row + 2 * lam + 1, None, :], r[skip:], out=target)
        return blocks

    def order(self, key: tuple[int, int]) -> torch.Tensor:
        """(q,) long: for each feature of block ``key`` in this plan's order, its index in
        :func:`~nhamil.features.families.pair_features`' order (products there run density
        channel major, here radial channel major)."""
        index = torch.arange(self.sizes[key])
        width = self.n_density * self.n_radial
        swapped = torch.arange(width).view(self.n_density, self.n_radial).T.reshape(-1)
        for product in self.products:
            for _, output_key, start, _ in product.outputs:
                if output_key == key:
                    index[start : start + width] = start + swapped
        return index
