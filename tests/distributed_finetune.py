"""Run under ``torchrun --nproc-per-node=N tests/distributed_finetune.py OUT``: one rank of the
fine-tuning runs of :data:`RUNS` (gloo) on the paper's water SAPH; rank 0 saves to ``OUT/result.pt``
each run's heads and log, and how many molecules each rank predicted and how many checkpoints each
wrote; the checkpoints and logs are in ``OUT/<run>``. :func:`tune_water` is the same run in one process.

Every rank fits the same ridge heads in memory (the one-process fit, not the shared one, whose
weights differ from it by round-off), so that the runs compare the fine-tuning alone."""

import importlib
import sys
from pathlib import Path

import torch
from distributed_fit import fit_water
from paper_data import WATER, paper_saph

from nhamil.distributed import Shard, process_group
from nhamil.reference import read_frames
from nhamil.training import FinetuneSettings, TrainingData, finetune

N_FRAMES = 10
COMMON = {"energy_weight": 1.0, "hidden": 4, "patience": 10, "validation_fraction": 0.2}
#: Adam on batches of 3 (parts of 2 and 1 molecules); L-BFGS on batches of 1 (the second rank's
#: part of every batch is empty); Adam for 2 epochs, then resumed to 3 in the same folder.
RUNS = {
    "adam": FinetuneSettings(epochs=3, batch_size=3, learning_rate=1e-4, **COMMON),
    "lbfgs": FinetuneSettings(
        epochs=2, batch_size=1, optimizer="lbfgs", learning_rate=1.0, lbfgs_iterations=3, **COMMON
    ),
    "adam_stopped": FinetuneSettings(epochs=2, batch_size=3, learning_rate=1e-4, **COMMON),
}
RESUMED = "adam_stopped"
#: The run that resumes ``adam_stopped`` (same folder) to the epochs of ``adam``.
RESUMING = RUNS["adam"]


def tune_water(
    settings: FinetuneSettings, directory: Path | None = None, shard: Shard | None = None
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, float]]]:
    """(state dicts of the fine-tuned heads, in the model's head order; the log) of the ridge
    model of the first :data:`N_FRAMES` water frames, fine-tuned on them with ``settings``."""
    model = fit_water(N_FRAMES, streaming=None)
    frames = read_frames(WATER, f":{N_FRAMES}")
    matrices = [torch.as_tensor(m) for m in paper_saph("water", range(N_FRAMES))]
    data = TrainingData(frames, matrices, [5] * N_FRAMES)
    history = finetune(model, data, settings, directory=directory, progress=False, shard=shard)
    return [fit.state_dict() for _, fit in model.heads.values()], history


def _counting(shard: Shard) -> dict[str, int]:
    """Counts of the molecules this rank predicts and of the checkpoints it writes, kept by
    wrapping fine-tuning's own functions."""
    counts = {"predicted": 0, "saved": 0}
    finetune_module = importlib.import_module("nhamil.training.finetune")
    predict, save = finetune_module._Batches.predict, finetune_module._save

    def counted_predict(self, molecules):
        counts["predicted"] += len(molecules)
        return predict(self, molecules)

    def counted_save(*args, **kwargs):
        counts["saved"] += 1
        return save(*args, **kwargs)

    finetune_module._Batches.predict, finetune_module._save = counted_predict, counted_save
    return counts


def _by_rank(shard: Shard, value: int) -> list[int]:
    """``value`` of every rank, in rank order."""
    values = torch.zeros(shard.world_size, dtype=torch.int64)
    values[shard.rank] = value
    shard.all_reduce([values])
    return values.tolist()


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    with process_group("cpu") as shard:
        counts = _counting(shard)
        results = {name: tune_water(settings, out / name, shard) for name, settings in RUNS.items()}
        results["resumed"] = tune_water(RESUMING, out / RESUMED, shard)
        counted = {name: _by_rank(shard, count) for name, count in counts.items()}
        if shard.writes:
            torch.save({"world_size": shard.world_size, "results": results, **counted}, out / "result.pt")
