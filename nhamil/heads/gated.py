"""Gated equivariant heads: ridge weights modulated, channel by channel, by an MLP of invariants.

A (lambda, sigma) block of features X (n, 2 lambda + 1, q), scaled as ridge scales it, and the
samples' invariants u (n, q0) predict the targets (n, 2 lambda + 1, t) as

- ``gate="channel"``: Y = (X * s(u)) W + b, with s(u) = 1 + tanh(g(u)) (n, q) a positive scale
  per feature channel, the same for every mu component and every target;
- ``gate="weights"``: Y_t = sum_q X_q (W_qt + G_qt(u)) + b_t, with G(u) (n, q, t) an invariant
  correction of every weight (a bilinear model in X and u at first order, as a zeta = 2
  lambda-SOAP kernel is, plus the MLP's higher orders).

g and G are MLPs of the invariants (standardized per channel); their last layer starts at
zero, so the head starts as the ridge solution W (fitted on the training molecules in the same
scaled coordinates) and b (ridge's intercept, only for invariant on-site blocks). Both gates
depend on invariants only and multiply whole channels, the same for every mu, so
Y(R x) = D Y(x) exactly (D the block's Wigner matrix, times sigma for improper R); the invariants
of a - kind are its + kind's (:func:`nhamil.features.head_inputs`), so the - blocks still flip
sign when the two atoms swap. The invariants add body order: a product of a nu-body feature and
an MLP of nu'-body invariants (on-site and both-centre pair ones) is of higher order.

The per-block fit trains W, b and the MLP on the block's own targets (mean squared error) by
Adam over minibatches of molecules, with a validation split by molecule and early stopping.
Whole-model training against assembled matrices and orbital energies is
:func:`nhamil.training.finetune`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..errors import InputError
from .ridge import LinearFit, RidgeSettings, fit_ridge

GATES = ("channel", "weights")


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """The gate of a gated head, shared by the per-block fit (:class:`GatedSettings`) and the
    gates that fine-tuning gives to ridge / linear heads (:class:`~nhamil.training.FinetuneSettings`):
    hidden: width of the gate MLP; layers: its hidden layers (0: a linear gate of u); gate: one
    of :data:`GATES`."""

    hidden: int = 32
    layers: int = 1
    gate: str = "channel"

    def check_gate(self, group: str) -> None:
        """Raise ``InputError`` naming the setting ``group.name`` of a gate that cannot be built."""
        if self.gate not in GATES:
            raise InputError(f"{group}.gate={self.gate!r} is not a gate; choose one of {', '.join(GATES)}")
        if self.hidden < 1:
            raise InputError(f"{group}.hidden={self.hidden} must be at least 1")
        if self.layers < 0:
            raise InputError(f"{group}.layers={self.layers} must be at least 0")


@dataclass(frozen=True, kw_only=True)
class GatedSettings(GateSettings):
    """The gate (:class:`GateSettings`: hidden, layers, gate) and its per-block training:
    learning_rate, weight_decay (AdamW, on every parameter), epochs and
    batch_size (molecules per step) of the per-block training; patience: epochs without a better
    validation loss before stopping (the best epoch's weights are kept); validation_fraction:
    molecules held out for it; alphas, n_folds: the ridge fit that starts W (cross-validated on
    the training molecules); device: where the block is trained (None: the features' device);
    seed: validation split, initial MLP weights, batch order."""

    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    epochs: int = 200
    batch_size: int = 32
    patience: int = 20
    validation_fraction: float = 0.1
    alphas: tuple[float, ...] = RidgeSettings().alphas
    n_folds: int = 5
    device: Optional[str] = None
    seed: int = 0

    def __post_init__(self):
        self.check_gate("head")
        if not 0.0 < self.validation_fraction < 1.0:
            raise InputError(f"head.validation_fraction={self.validation_fraction} must lie in (0, 1)")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"head.{name}={getattr(self, name)} must be at least 1")


class GatedHead(nn.Module):
    """One block's gated head (a :class:`~nhamil.heads.Head` and a torch module), float64.

    Buffers: scale (q,) and feature_mean (q,) as :class:`LinearFit`'s; invariant_mean and
    invariant_scale (q0,) standardize the invariants. Parameters: weights (q, t), intercept (t,)
    (a parameter only with ``intercept``), and the MLP ``gate_net`` (q0 -> q or q t outputs).
    """

    def __init__(
        self,
        n_features: int,
        n_invariants: int,
        n_targets: int,
        *,
        hidden: int,
        layers: int,
        gate: str,
        intercept: bool,
    ):
        super().__init__()
        self.shape = {
            "n_features": n_features,
            "n_invariants": n_invariants,
            "n_targets": n_targets,
            "hidden": hidden,
            "layers": layers,
            "gate": gate,
            "intercept": intercept,
        }
        options = {"dtype": torch.float64}
        self.register_buffer("scale", torch.ones(n_features, **options))
        self.register_buffer("feature_mean", torch.zeros(n_features, **options))
        self.register_buffer("invariant_mean", torch.zeros(n_invariants, **options))
        self.register_buffer("invariant_scale", torch.ones(n_invariants, **options))
        self.weights = nn.Parameter(torch.zeros(n_features, n_targets, **options))
        if intercept:
            self.intercept = nn.Parameter(torch.zeros(n_targets, **options))
        else:
            self.register_buffer("intercept", torch.zeros(n_targets, **options))
        widths = [n_invariants] + [hidden] * layers
        stack: list[nn.Module] = []
        for first, second in itertools.pairwise(widths):
            stack += [nn.Linear(first, second, **options), nn.SiLU()]
        last = nn.Linear(widths[-1], n_features * (n_targets if gate == "weights" else 1), **options)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.gate_net = nn.Sequential(*stack, last)

    @classmethod
    def from_linear(
        cls, fit: LinearFit, invariants: torch.Tensor, *, hidden: int, layers: int, gate: str, intercept: bool
    ) -> GatedHead:
        """The head that predicts exactly what ``fit`` predicts (its gate at zero), with the
        invariants' standardization from ``invariants`` (n, 1, q0) of the training samples."""
        q, t = fit.weights.shape
        head = cls(q, invariants.shape[-1], t, hidden=hidden, layers=layers, gate=gate, intercept=intercept)
        head.to(fit.weights.device)
        u = invariants[:, 0].to(torch.float64)
        spread = u.std(dim=0, correction=0) if len(u) > 1 else torch.ones_like(u[0])
        with torch.no_grad():
            head.scale.copy_(fit.scale)
            head.feature_mean.copy_(fit.feature_mean)
            head.invariant_mean.copy_(u.mean(dim=0))
            head.invariant_scale.copy_(spread.clamp_min(1e-8 * float(spread.max().clamp_min(1e-300))))
            head.weights.copy_(fit.weights)
            head.intercept.copy_(fit.intercept)
        return head

    def forward(self, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        """(n, 2 lambda + 1, q), (n, 1, q0) -> (n, 2 lambda + 1, t), differentiable."""
        x = (features.to(self.weights) - self.feature_mean) / self.scale
        u = (invariants[:, 0].to(self.weights) - self.invariant_mean) / self.invariant_scale
        gate = self.gate_net(u)
        if self.shape["gate"] == "channel":
            return (x * (1.0 + torch.tanh(gate))[:, None, :]) @ self.weights + self.intercept
        weights = self.weights + gate.reshape(len(u), *self.weights.shape)
        return torch.einsum("nmq,nqt->nmt", x, weights) + self.intercept

    def predict(self, features: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without gradients, on the features' device."""
        with torch.no_grad():
            return self(features, invariants)

    def state(self) -> dict:
        """{"shape": the constructor's arguments, "tensors": the state dict}: plain data."""
        return {"shape": dict(self.shape), "tensors": {k: v.detach().clone() for k, v in self.state_dict().items()}}

    @classmethod
    def from_state(cls, state: dict) -> GatedHead:
        shape = dict(state["shape"])
        head = cls(shape.pop("n_features"), shape.pop("n_invariants"), shape.pop("n_targets"), **shape)
        head.load_state_dict(state["tensors"])
        return head


def fit_gated(
    features: torch.Tensor,
    invariants: torch.Tensor,
    targets: torch.Tensor,
    groups: torch.Tensor,
    *,
    intercept: bool,
    settings: GatedSettings,
) -> GatedHead:
    """Fit one block: features (n, 2 lambda + 1, q), invariants (n, 1, q0), targets
    (n, 2 lambda + 1, t), groups (n,) molecule of each sample. Ridge on the training molecules
    starts W; then Adam on the block's mean squared error, early-stopped on the validation
    molecules. The head is returned on the features' device."""
    device = torch.device(settings.device) if settings.device else features.device
    x, u, y = (tensor.to(device, torch.float64) for tensor in (features, invariants, targets))
    groups = groups.to(device)
    train, valid = split_molecules(groups.unique(), settings.validation_fraction, settings.seed)
    in_train = torch.isin(groups, train)
    ridge = fit_ridge(
        x[in_train],
        y[in_train],
        groups[in_train],
        intercept=intercept,
        settings=RidgeSettings(alphas=settings.alphas, n_folds=settings.n_folds, seed=settings.seed),
    )
    torch.manual_seed(settings.seed)
    head = GatedHead.from_linear(
        ridge, u[in_train], hidden=settings.hidden, layers=settings.layers, gate=settings.gate, intercept=intercept
    )
    _train_block(head, (x, u, y, groups), train, valid, settings)
    return head.to(features.device)


def split_molecules(molecules: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) molecule ids: ``fraction`` of ``molecules`` (at least one, and at
    least one left to train on) drawn with ``seed``."""
    if len(molecules) < 2:
        raise InputError(f"a validation split needs at least two molecules, got {len(molecules)}: add training data")
    order = molecules[
        torch.randperm(len(molecules), generator=torch.Generator().manual_seed(seed)).to(molecules.device)
    ]
    n_valid = min(max(1, math.ceil(fraction * len(molecules))), len(molecules) - 1)
    return order[n_valid:].sort().values, order[:n_valid].sort().values


def _train_block(
    head: GatedHead, data: tuple[torch.Tensor, ...], train: torch.Tensor, valid: torch.Tensor, settings: GatedSettings
) -> None:
    """Adam on the mean squared error over minibatches of training molecules; keeps the
    parameters of the epoch with the lowest validation error (the ridge start counts as one)."""
    x, u, y, groups = data
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    in_valid = torch.isin(groups, valid)

    def validation_error() -> float:
        with torch.no_grad():
            return float((head(x[in_valid], u[in_valid]) - y[in_valid]).pow(2).mean())

    best, best_state, waited = validation_error(), _copy(head), 0
    for _ in range(settings.epochs):
        for batch in train[torch.randperm(len(train), generator=generator).to(train.device)].split(settings.batch_size):
            rows = torch.isin(groups, batch)
            optimizer.zero_grad()
            (head(x[rows], u[rows]) - y[rows]).pow(2).mean().backward()
            optimizer.step()
        error = validation_error()
        if error < best:
            best, best_state, waited = error, _copy(head), 0
        else:
            waited += 1
            if waited >= settings.patience:
                break
    head.load_state_dict(best_state)


def _copy(head: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in head.state_dict().items()}
