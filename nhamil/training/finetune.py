"""Train all heads of a fitted model together against assembled matrices and their orbital energies.

Starting from a fitted :class:`~nhamil.model.HamiltonianModel` (gated heads, or ridge /
linear heads, which become :class:`~nhamil.heads.GatedHead` modules that predict exactly what
they did), every head's parameters are trained jointly by minibatches of molecules, through the
model's own linear way from head outputs to matrix elements (one (K, E) map per group of pair
kinds, then a scatter). The loss of a batch is

    matrix_weight * mean_elements (F_pred - F)^2 + energy_weight * mean_occupied (e_pred - e)^2,

Hartree^2, with e the occupied orbital energies: eigenvalues of F (orthogonal targets) or of
L^-1 F L^-T with S = L L^T the AO overlap (non-orthogonal ``fock`` targets: F C = S C E), through
``torch.linalg.eigvalsh``, whose gradient is well defined for the non-degenerate occupied levels
of closed-shell molecules. A baseline, for a model with one, is added before the eigenvalues.

Predictions stay exactly equivariant: only the heads change, and each stays a gated head
(:mod:`nhamil.heads.gated`). A validation split by molecule stops training early (the best
epoch's heads are kept); a checkpoint written atomically after every epoch lets a run that was
stopped resume where it was; a CSV log holds the losses of every epoch.

On several processes (a :class:`~nhamil.distributed.Shard` of ``torchrun``), every rank holds rank
0's heads and draws the same minibatches; each predicts its part of every batch, with that part's
sums divided by the whole batch's element and level counts, so that the all-reduced gradients and
losses are the whole batch's: the ranks take the single-process steps (to round-off) and stop at
the same epoch. Rank 0 alone writes the checkpoint and the log; every rank resumes from rank 0's.
"""

from __future__ import annotations

import csv
import io
import math
import pickle
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import ase
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..blocks import PairKind
from ..blocks.assembly import assemble, group_of, layout_groups
from ..distributed import Shard
from ..errors import DataFileError, InputError
from ..features import head_inputs
from ..heads import GatedHead, GateSettings, LinearFit, split_molecules
from ..model import HamiltonianModel, _feature_groups, _has_intercept
from ..reference.baseline import BaselineMatrices

OPTIMIZERS = ("adam", "lbfgs")
CHECKPOINT = "finetune.pt"
LOG = "finetune_log.csv"
LOG_COLUMNS = (
    "epoch",
    "train_loss",
    "train_matrix_mse",
    "train_energy_mse",
    "validation_loss",
    "validation_matrix_mse",
    "validation_energy_mse",
    "seconds",
)


@dataclass(frozen=True, kw_only=True)
class FinetuneSettings(GateSettings):
    """epochs (0: no fine-tuning); batch_size: molecules per step; optimizer: "adam" (AdamW with
    ``weight_decay``) or "lbfgs" (one full-batch L-BFGS step of up to ``lbfgs_iterations`` per
    epoch, strong Wolfe line search); learning_rate; matrix_weight, energy_weight: the loss's
    weights (Hartree^-2 scale: MSE of elements and of occupied orbital energies); patience:
    epochs without a better validation loss before stopping; validation_fraction: molecules held
    out; resume: continue from the checkpoint of the output folder, if there is one; hidden,
    layers, gate (:class:`~nhamil.heads.GateSettings`): the gates given to ridge / linear heads;
    seed: validation split, batch order and the initial gate layers of ridge / linear heads."""

    epochs: int = 0
    batch_size: int = 16
    optimizer: str = "adam"
    learning_rate: float = 1e-6
    weight_decay: float = 0.0
    lbfgs_iterations: int = 20
    matrix_weight: float = 1.0
    energy_weight: float = 0.0
    patience: int = 10
    validation_fraction: float = 0.1
    resume: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"finetune.optimizer={self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        self.check_gate("finetune")
        if min(self.matrix_weight, self.energy_weight) < 0 or self.matrix_weight + self.energy_weight == 0:
            raise InputError(
                f"finetune weights matrix={self.matrix_weight}, energy={self.energy_weight}: "
                "both must be >= 0 and one > 0"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise InputError(f"finetune.validation_fraction={self.validation_fraction} must lie in (0, 1)")
        for name in ("epochs", "batch_size", "patience", "lbfgs_iterations"):
            if getattr(self, name) < 0 or (getattr(self, name) == 0 and name != "epochs"):
                raise InputError(f"finetune.{name}={getattr(self, name)} must be positive")


@dataclass(frozen=True)
class TrainingData:
    """frames (Å); matrices: full target matrices (n_ao, n_ao), Hartree, baseline included;
    n_occupied: occupied states per frame; overlaps: AO overlaps for a non-orthogonal target,
    else None; baselines: the model's baseline of the frames (computed from them if None)."""

    frames: Sequence[ase.Atoms]
    matrices: Sequence[torch.Tensor]
    n_occupied: Sequence[int]
    overlaps: Sequence[np.ndarray] | None = None
    baselines: BaselineMatrices | None = None


class _Batches:
    """The model's heads over cached features of all training frames: predictions of any
    batch of molecules, and this rank's part of its loss (``shard``: the ranks sharing a batch)."""

    def __init__(
        self,
        model: HamiltonianModel,
        data: TrainingData,
        settings: FinetuneSettings,
        device: torch.device,
        progress: bool,
        shard: Shard,
    ):
        self.model, self.data, self.settings, self.device, self.shard = model, data, settings, device, shard
        layout = model._layout(data.frames)
        self.inputs, self.rows, self.samples = {}, {}, {}
        for group in _feature_groups(layout.pairs()):
            features = model.featurizer.compute_in_chunks(data.frames, group, device)
            for kind, equivariant in model.heads:
                if kind in features:
                    self.inputs[(kind, equivariant)] = head_inputs(features, kind, equivariant)
                    self.samples[kind] = features[kind].samples.cpu().numpy()
                    self.rows[kind] = _rows_by_molecule(self.samples[kind], len(data.frames))
        self.heads = trainable_heads(model, self.inputs, settings, device)
        self.transforms = {group: model._transform(group).to(device) for group in layout_groups(layout)}
        baselines = model._checked_baselines(data.frames, data.baselines, progress)
        self.baselines = None if baselines is None else [torch.as_tensor(b, device=device) for b in baselines.matrices]
        self.targets = [torch.as_tensor(m, dtype=torch.float64, device=device) for m in data.matrices]
        self.metrics = None if data.overlaps is None else [_inverse_cholesky(s, device) for s in data.overlaps]
        self.energies = [self._energies(m, i) for i, m in enumerate(self.targets)]

    def predict(self, molecules: np.ndarray) -> list[torch.Tensor]:
        """Full predicted matrices (baseline added) of ``molecules`` (sorted training indices)."""
        layout = self.model._layout([self.data.frames[i] for i in molecules])
        values = {}
        for group, samples in layout_groups(layout).items():
            outputs = []
            for (kind, equivariant), head in self.heads.items():
                if group_of(kind) == group:
                    rows = np.concatenate([self.rows[kind][i] for i in molecules])
                    _check_order(self.samples[kind][rows], samples, molecules)
                    block, invariants = self.inputs[(kind, equivariant)]
                    outputs.append(head(block[rows], invariants[rows]).flatten(1))
            values[group] = torch.cat(outputs, dim=1) @ self.transforms[group]
        matrices = assemble(values, layout)
        if self.baselines is not None:
            matrices = [m + self.baselines[i] for m, i in zip(matrices, molecules, strict=True)]
        return matrices

    def loss(self, molecules: np.ndarray) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """(this rank's part of the weighted loss, with gradients; the whole batch's (loss, matrix
        MSE, occupied-energy MSE)), Hartree^2. The part holds the squared errors of this rank's
        :meth:`~nhamil.distributed.Shard.part` of ``molecules`` over the whole batch's counts of
        elements and levels, so that the parts of all ranks add up to the batch's loss."""
        mine = self.shard.part(molecules)
        elements = sum(float(self.targets[i].numel()) for i in molecules)
        levels = sum(len(self.energies[i]) for i in molecules)
        predicted = self.predict(mine) if len(mine) else []
        matrix = self._zero() + sum((p - self.targets[i]).pow(2).sum() for p, i in zip(predicted, mine, strict=True))
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.settings.energy_weight > 0):
            errors = [self._energies(p, i) - self.energies[i] for p, i in zip(predicted, mine, strict=True)]
            energy = self._zero() + sum(e.pow(2).sum() for e in errors)
        matrix, energy = matrix / elements, energy / levels
        part = self.settings.matrix_weight * matrix + self.settings.energy_weight * energy
        whole = torch.stack([part, matrix, energy]).detach()
        self.shard.all_reduce([whole])
        return part, tuple(float(value) for value in whole)

    def share_gradients(self) -> None:
        """Sum the heads' gradients over the ranks (each holds its part's): the whole batch's
        gradient on every rank; a parameter no rank's part used keeps no gradient, as in one process."""
        if self.shard.group is None:
            return
        parameters = [p for head in self.heads.values() for p in head.parameters()]
        used = torch.tensor([float(p.grad is not None) for p in parameters], dtype=torch.float64, device=self.device)
        gradients = [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]
        self.shard.all_reduce([used])
        self.shard.all_reduce(gradients)
        for parameter, gradient, anyone in zip(parameters, gradients, used.tolist(), strict=True):
            parameter.grad = gradient if anyone else None

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float64, device=self.device)

    def _energies(self, matrix: torch.Tensor, molecule: int) -> torch.Tensor:
        """(n_occupied,) lowest orbital energies of one full matrix, Hartree."""
        if self.metrics is not None:
            matrix = self.metrics[molecule] @ matrix @ self.metrics[molecule].T
        return torch.linalg.eigvalsh(matrix)[: self.data.n_occupied[molecule]]


def trainable_heads(
    model: HamiltonianModel, inputs: dict, settings: FinetuneSettings, device: torch.device | str
) -> dict[tuple[PairKind, tuple[int, int]], nn.Module]:
    """The model's heads as torch modules on ``device``, in the model's head order: gated heads
    as they are, linear (ridge, minibatch) heads as gated heads that predict the same (their gate
    at zero), with ``settings``' gate, its layers drawn from ``settings.seed`` (the same on every
    rank and in every run, whatever random numbers were drawn before; the global generator is
    left as it was); they replace the model's heads. ``inputs``: {head key: (block, invariants)}
    of the training samples. ``InputError`` for any other head kind."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return _trainable_heads(model, inputs, settings, device)


def _trainable_heads(
    model: HamiltonianModel, inputs: dict, settings: FinetuneSettings, device: torch.device | str
) -> dict[tuple[PairKind, tuple[int, int]], nn.Module]:
    heads = {}
    for key, (keys, fit) in model.heads.items():
        if isinstance(fit, LinearFit):
            fit = GatedHead.from_linear(
                fit.to(device),
                inputs[key][1],
                hidden=settings.hidden,
                layers=settings.layers,
                gate=settings.gate,
                intercept=_has_intercept(*key),
            )
        if not isinstance(fit, GatedHead):
            raise InputError(
                f"fine-tuning trains gated or linear heads, not {type(fit).__name__}: use head=gated or "
                "head=ridge, or finetune.epochs=0"
            )
        heads[key] = fit.to(device)
        model.heads[key] = (keys, heads[key])
    return heads


def finetune(
    model: HamiltonianModel,
    data: TrainingData,
    settings: FinetuneSettings,
    *,
    directory: str | Path | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    shard: Shard | None = None,
) -> list[dict[str, float]]:
    """Train the heads of the fitted ``model`` together (in place) and return the log, one
    dict per epoch (:data:`LOG_COLUMNS`). With ``directory``, the checkpoint ``finetune.pt``
    and the log ``finetune_log.csv`` are written there after every epoch (atomically), and a run
    with ``settings.resume`` continues from the checkpoint it finds. ``shard``: this process's
    part of a run on several (every rank calls this with the same model and data; rank 0 alone
    writes and shows progress)."""
    if not model.heads:
        raise RuntimeError("the model is not fitted")
    if model.hartree is not None:
        raise InputError(
            "fine-tuning a model with a Hartree term is not supported (its losses would ignore the "
            "self-consistent loop): set finetune.epochs=0, or train without hartree.enabled"
        )
    shard = shard or Shard()
    device = torch.device(device)
    batches = _Batches(model, data, settings, device, progress and shard.writes, shard)
    _agree_on_heads(batches, shard)
    parameters = [p for head in batches.heads.values() for p in head.parameters()]
    optimizer = _optimizer(parameters, settings)
    train, valid = (part.numpy() for part in validation_split(len(data.frames), settings))
    generator = torch.Generator().manual_seed(settings.seed)
    state = {
        "epoch": 0,
        "history": [],
        "best_loss": _evaluate(batches, valid, settings)[0],
        "waited": 0,
        "best_heads": _head_states(batches.heads),
        "stopped": False,
    }
    path = None if directory is None else Path(directory) / CHECKPOINT
    saved = shard.from_writer(path.read_bytes() if shard.writes and _resumes(path, settings) else None)
    if saved is not None:
        state = _resume(saved, path, batches.heads, optimizer, generator, settings)
    with tqdm(
        total=settings.epochs,
        initial=min(state["epoch"], settings.epochs),
        desc="fine-tuning",
        unit="epoch",
        disable=not (progress and shard.writes),
    ) as bar:
        while state["epoch"] < settings.epochs and not state["stopped"]:
            start = time.perf_counter()
            train_losses = _epoch(batches, train, optimizer, generator, settings)
            valid_losses = _evaluate(batches, valid, settings)
            _record(state, batches.heads, train_losses, valid_losses, time.perf_counter() - start, settings)
            if path is not None and shard.writes:
                _save(path, state, batches.heads, optimizer, generator, settings)
                _write_log(path.parent / LOG, state["history"])
            bar.update()
            bar.set_postfix(train=f"{train_losses[0]:.3g}", validation=f"{valid_losses[0]:.3g}")
    for head, best in zip(batches.heads.values(), state["best_heads"], strict=True):
        head.load_state_dict(best)
    return state["history"]


def _agree_on_heads(batches: _Batches, shard: Shard) -> None:
    """Rank 0's head tensors (parameters and buffers) on every rank, whatever each rank's random
    initialization of new gate layers; ``RuntimeError`` if this rank's heads predicted other than
    rank 0's on the training samples (beyond round-off): the ranks were not given the same fit."""
    if shard.group is None:
        return
    own = {key: head.predict(*batches.inputs[key]) for key, head in batches.heads.items()}
    shard.broadcast([t for head in batches.heads.values() for t in head.state_dict().values()])
    for key, head in batches.heads.items():
        writer = head.predict(*batches.inputs[key])
        if (own[key] - writer).abs().max() > 1e-8 * writer.abs().max():
            raise RuntimeError(
                f"process {shard.rank}'s fitted head {key} predicts other than process 0's; "
                "every process must fit the same frames with the same settings"
            )


def validation_split(n_molecules: int, settings: FinetuneSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) positions among ``n_molecules`` training molecules: the seeded
    split by which :func:`finetune` stops early, so that a fit before it can leave out the same
    validation molecules."""
    return split_molecules(torch.arange(n_molecules), settings.validation_fraction, settings.seed)


def _optimizer(parameters: list[nn.Parameter], settings: FinetuneSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "lbfgs":
        return torch.optim.LBFGS(
            parameters, lr=settings.learning_rate, max_iter=settings.lbfgs_iterations, line_search_fn="strong_wolfe"
        )
    return torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay)


def _epoch(
    batches: _Batches,
    train: np.ndarray,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    settings: FinetuneSettings,
) -> tuple[float, float, float]:
    """One pass over the training molecules; (loss, matrix MSE, energy MSE) averaged over them."""
    order = train[torch.randperm(len(train), generator=generator).numpy()]
    chunks = [np.sort(chunk) for chunk in np.array_split(order, math.ceil(len(order) / settings.batch_size))]
    if isinstance(optimizer, torch.optim.LBFGS):

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            shares = [len(chunk) / len(train) for chunk in chunks]
            total = sum(
                _backward(batches, chunk, share)[0] * share for chunk, share in zip(chunks, shares, strict=True)
            )
            batches.share_gradients()
            return torch.tensor(total, dtype=torch.float64)

        optimizer.step(closure)
        return _evaluate(batches, train, settings)
    sums = np.zeros(3)
    for chunk in chunks:
        optimizer.zero_grad()
        losses = _backward(batches, chunk)
        batches.share_gradients()
        optimizer.step()
        sums += len(chunk) * np.array(losses)
    return tuple(float(value) for value in sums / len(train))


def _backward(batches: _Batches, chunk: np.ndarray, scale: float = 1.0) -> tuple[float, float, float]:
    """Gradients of ``scale`` times this rank's part of the batch ``chunk``'s loss, added to the
    heads' (none where this rank's part is empty); the whole batch's (loss, matrix, energy) MSEs."""
    part, losses = batches.loss(chunk)
    if part.requires_grad:
        (part * scale).backward()
    return losses


def _evaluate(batches: _Batches, molecules: np.ndarray, settings: FinetuneSettings) -> tuple[float, float, float]:
    """(loss, matrix MSE, energy MSE) over ``molecules``, without gradients, molecule-weighted."""
    sums = np.zeros(3)
    with torch.no_grad():
        for chunk in np.array_split(molecules, math.ceil(len(molecules) / settings.batch_size)):
            sums += len(chunk) * np.array(batches.loss(chunk)[1])
    return tuple(float(value) for value in sums / len(molecules))


def _record(state: dict, heads: dict, train: tuple, valid: tuple, seconds: float, settings: FinetuneSettings) -> None:
    """Append the epoch to the log; keep the heads if the validation loss improved; stop after
    ``patience`` epochs without improvement."""
    state["epoch"] += 1
    state["history"].append(dict(zip(LOG_COLUMNS, (state["epoch"], *train, *valid, seconds), strict=True)))
    if valid[0] < state["best_loss"]:
        state["best_loss"], state["best_heads"], state["waited"] = valid[0], _head_states(heads), 0
    else:
        state["waited"] += 1
        state["stopped"] = state["waited"] >= settings.patience


def _head_states(heads: dict) -> list[dict[str, torch.Tensor]]:
    return [{name: value.detach().clone() for name, value in head.state_dict().items()} for head in heads.values()]


def _save(
    path: Path,
    state: dict,
    heads: dict,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    settings: FinetuneSettings,
) -> None:
    """The checkpoint: training state, current heads, optimizer and batch-order generator."""
    buffer = io.BytesIO()
    torch.save(
        {
            **state,
            "heads": _head_states(heads),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "settings": asdict(settings),
        },
        buffer,
    )
    with atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getbuffer())


def _resumes(path: Path | None, settings: FinetuneSettings) -> bool:
    """Whether the run continues from a checkpoint at ``path``."""
    return path is not None and settings.resume and path.exists()


def _resume(
    checkpoint: bytes,
    path: Path,
    heads: dict,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    settings: FinetuneSettings,
) -> dict:
    """Restore heads, optimizer and generator from ``checkpoint`` (the bytes of the checkpoint
    ``path``, read by rank 0); the training state it held."""
    try:
        saved = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)
        for head, tensors in zip(heads.values(), saved["heads"], strict=True):
            head.load_state_dict(tensors)
        optimizer.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
    except (RuntimeError, KeyError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise DataFileError(
            f"fine-tuning checkpoint {path} does not match this model ({err}); delete it to "
            "start again, or set finetune.resume=false"
        ) from err
    if saved["settings"]["optimizer"] != settings.optimizer:
        raise DataFileError(
            f"fine-tuning checkpoint {path} was written with optimizer "
            f"{saved['settings']['optimizer']!r}, not {settings.optimizer!r}: delete it or keep it"
        )
    return {name: saved[name] for name in ("epoch", "history", "best_loss", "waited", "best_heads", "stopped")}


def _write_log(path: Path, history: list[dict[str, float]]) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def _rows_by_molecule(samples: np.ndarray, n_molecules: int) -> list[np.ndarray]:
    """Row indices of each molecule's samples, in their order."""
    order = np.argsort(samples[:, 0], kind="stable")
    bounds = np.searchsorted(samples[order, 0], np.arange(n_molecules + 1))
    return [order[bounds[m] : bounds[m + 1]] for m in range(n_molecules)]


def _check_order(cached: np.ndarray, layout_samples: np.ndarray, molecules: np.ndarray) -> None:
    """The cached rows of a batch must be the batch layout's samples, in its order."""
    renumbered = np.column_stack([np.searchsorted(molecules, cached[:, 0]), cached[:, 1:]])
    if not np.array_equal(renumbered, layout_samples):
        raise RuntimeError("cached feature rows are not in the order of the batch's matrix layout")


def _inverse_cholesky(overlap: np.ndarray, device: torch.device) -> torch.Tensor:
    """L^-1 with S = L L^T: L^-1 F L^-T has the generalized eigenvalues of (F, S)."""
    cholesky = torch.linalg.cholesky(torch.as_tensor(overlap, dtype=torch.float64, device=device))
    return torch.linalg.solve_triangular(
        cholesky, torch.eye(len(cholesky), dtype=torch.float64, device=device), upper=False
    )
