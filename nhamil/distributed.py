"""Training on several processes (devices, nodes) with torch.distributed: frames sharded by rank.

A :class:`Shard` is the explicit context a fit runs in: this process's rank, the number of
processes, and the process group (None: one process, no torch.distributed). Chunks of frames
are dealt to ranks in turn (:meth:`Shard.chunks`); the ridge sums of every rank are added by an
all-reduce, so the distributed fit is the single-process one to round-off; rank 0 alone writes.
Fine-tuning (:mod:`nhamil.training.finetune`) then runs on every rank: each holds rank 0's heads
(:meth:`Shard.broadcast`) and the same minibatches, computes its :meth:`Shard.part` of each, and
the gradients and losses are summed by an all-reduce, so the ranks take the single-process steps.

Start it with ``torchrun --nproc-per-node=N -m nhamil.train ...`` (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in the environment), or as the tasks of a
Slurm job (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; the rendezvous is set by
submitit from Slurm's node list, see ``configs/hydra/launcher/slurm_multi.yaml``). NCCL on
GPUs, gloo on CPUs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .errors import InputError


@dataclass(frozen=True)
class Shard:
    """rank of this process among world_size; group: the torch.distributed process group (None
    for a single process); local_rank: the process's index on its node (its GPU)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None

    @property
    def writes(self) -> bool:
        """True on the one process that writes outputs (rank 0)."""
        return self.rank == 0

    def chunks(self, n_frames: int, chunk_frames: int) -> list[range]:
        """This rank's chunks of frame indices: the chunks of ``chunk_frames`` consecutive frames
        of 0 .. n_frames - 1, dealt to ranks in turn (chunk k to rank k mod world_size)."""
        starts = range(0, n_frames, chunk_frames)
        return [range(start, min(start + chunk_frames, n_frames)) for start in starts[self.rank :: self.world_size]]

    def all_reduce(self, tensors: list[torch.Tensor]) -> None:
        """Sum ``tensors`` over all ranks, in place (nothing for a single process)."""
        self._flat(tensors, lambda flat: dist.all_reduce(flat, group=self.group))

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's ``tensors`` (of one dtype) into ``tensors`` on every rank, in place."""
        self._flat(tensors, lambda flat: dist.broadcast(flat, src=0, group=self.group))

    def _flat(self, tensors: list[torch.Tensor], collective) -> None:
        """``collective`` on the tensors concatenated into one, copied back (nothing for one process)."""
        if self.group is None:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        collective(flat)
        with torch.no_grad():
            for tensor, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
                tensor.copy_(part.view_as(tensor))

    def part(self, items: np.ndarray) -> np.ndarray:
        """This rank's share of ``items``: the rank-th of world_size consecutive, near-equal parts
        (empty when there are fewer items than ranks)."""
        return np.array_split(items, self.world_size)[self.rank]

    def largest(self, values: list[int], device: torch.device | str) -> list[int]:
        """The largest of each of ``values`` over all ranks."""
        if self.group is None:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.int64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group)
        return tensor.tolist()

    def from_writer(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        return self._from_rank(value, 0)

    def owners(self, costs: list[float]) -> list[int]:
        """The rank that solves each of a list of independent problems of these ``costs`` (any
        unit, e.g. flops), balanced greedily: the costliest first, each to the rank with the least
        work so far (ties to the lower rank), so that ranks share the solves instead of repeating
        them. The same on every rank for the same costs."""
        loads, owner = [0.0] * self.world_size, [0] * len(costs)
        for index in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            owner[index] = min(range(self.world_size), key=lambda rank: (loads[rank], rank))
            loads[owner[index]] += costs[index]
        return owner

    def from_owner(self, value: Any, owner: int) -> Any:
        """``value`` (picklable) of rank ``owner`` (see :meth:`owners`), on every rank; every
        rank calls it for the same problems in the same order."""
        return self._from_rank(value, owner)

    def gathered(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        return [self._from_rank(value, rank) for rank in range(self.world_size)]

    def _from_rank(self, value: Any, source: int) -> Any:
        """``value`` of rank ``source`` on every rank (this rank's own value with one process)."""
        if self.group is None:
            return value
        box = [value if self.rank == source else None]
        dist.broadcast_object_list(box, src=source, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.group is not None:
            dist.barrier(group=self.group)

    def device(self, device: str) -> str:
        """The device of this process for a run's ``device`` setting: "cuda" means this node's
        GPU of index local_rank when several processes run; anything else is kept."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world_size > 1 else device


def _environment() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's or Slurm's variables; None for one process."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if int(os.environ.get("SLURM_NTASKS", 1)) == 1:
        return None
    if "MASTER_ADDR" not in os.environ:
        raise InputError(
            f"a Slurm job of {os.environ['SLURM_NTASKS']} tasks without MASTER_ADDR: every task would train alone; "
            "use hydra/launcher=slurm_multi (its setup exports the rendezvous) or one task"
        )
    os.environ.setdefault("MASTER_PORT", "29500")
    return int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"]), int(os.environ["SLURM_LOCALID"])


@contextlib.contextmanager
def process_group(device: str, timeout_minutes: float = 60.0) -> Iterator[Shard]:
    """The :class:`Shard` of this process: a process group (NCCL for ``device`` "cuda", else
    gloo) when it was started as one of several (torchrun, Slurm tasks), destroyed on exit (after
    all ranks reach it, unless this one fails);
    a single-process Shard otherwise. ``InputError`` for "cuda" without a GPU per local rank."""
    found = _environment()
    if found is None or found[1] == 1:
        yield Shard()
        return
    rank, world_size, local_rank = found
    cuda = device.startswith("cuda")
    if cuda and local_rank >= torch.cuda.device_count():
        raise InputError(
            f"process {rank} (local rank {local_rank}) has no GPU: {torch.cuda.device_count()} visible; "
            "start as many processes per node as GPUs, or set device=cpu"
        )
    if cuda:
        torch.cuda.set_device(local_rank)
    os.environ.setdefault("RANK", str(rank))
    os.environ.setdefault("WORLD_SIZE", str(world_size))
    dist.init_process_group(
        "nccl" if cuda else "gloo", rank=rank, world_size=world_size, timeout=timedelta(minutes=timeout_minutes)
    )
    try:
        yield Shard(rank, world_size, local_rank, dist.group.WORLD)
        dist.barrier()  # no rank tears the group down while another still has its messages in flight
    finally:
        dist.destroy_process_group()
