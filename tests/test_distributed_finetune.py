"""Fine-tuning on two gloo processes takes the single-process steps: same heads and log to 1e-10,
work shared, rank 0 alone writes, resume continues; ``torchrun -m nhamil.train`` fine-tunes."""

import csv
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_finetune import RESUMED, RESUMING, RUNS, tune_water
from distributed_fit import tiny_water_run

from nhamil.config import compose_config
from nhamil.distributed import Shard
from nhamil.model import HamiltonianModel
from nhamil.train import _stream_settings
from nhamil.training.finetune import CHECKPOINT, LOG

pytestmark = pytest.mark.usefixtures("one_thread")

TESTS = Path(__file__).parent


def _torchrun(arguments: list[str], cwd: Path) -> None:
    """``torchrun --standalone --nproc-per-node=2`` of ``arguments``, one thread per process; on
    a timeout (ranks that disagree wait for each other's messages) all its processes are killed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    with subprocess.Popen([*command, *arguments], env=env, cwd=cwd, start_new_session=True) as launcher:
        try:
            assert launcher.wait(timeout=300) == 0
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            raise


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _flat(head: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensor.reshape(-1) for tensor in head.values()])


def _assert_same_run(two: tuple, one: tuple, tolerance: float = 1e-10) -> None:
    """Head tensors and every logged number but the seconds equal to ``tolerance`` (relative)."""
    (two_heads, two_log), (one_heads, one_log) = two, one
    for two_head, one_head in zip(two_heads, one_heads, strict=True):
        assert two_head.keys() == one_head.keys()
        for name, tensor in one_head.items():
            assert _relative(two_head[name], tensor) < tolerance, name
    assert len(two_log) == len(one_log)
    for two_row, one_row in zip(two_log, one_log, strict=True):
        for column, value in one_row.items():
            if column != "seconds":
                assert abs(two_row[column] - value) <= tolerance * abs(value), column


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> tuple[Path, dict]:
    """The runs of tests/distributed_finetune.py on two gloo processes: (their folder, result)."""
    out = tmp_path_factory.mktemp("two_ranks")
    _torchrun([str(TESTS / "distributed_finetune.py"), str(out)], cwd=out)
    return out, torch.load(out / "result.pt", weights_only=True)


@pytest.mark.parametrize("run", ["adam", "lbfgs"])
def test_two_gloo_processes_fine_tune_the_single_process_heads(two_processes, run, tmp_path):
    """Adam (batches split 2 + 1) and L-BFGS (the second rank's part always empty): the heads kept
    (the best epoch's), the last epoch's heads (in the checkpoint) and the log of two processes are
    the single-process ones to 1e-10, and every head moved far more than that in training."""
    out, saved = two_processes
    assert saved["world_size"] == 2
    one = tune_water(RUNS[run], tmp_path)
    _assert_same_run(saved["results"][run], one)
    last_two, last_one = (
        torch.load(folder / CHECKPOINT, weights_only=True)["heads"] for folder in (out / run, tmp_path)
    )
    _assert_same_run((last_two, []), (last_one, []))
    started = tune_water(dataclasses.replace(RUNS[run], epochs=0))[0]
    moved = [_relative(_flat(last), _flat(start)) for last, start in zip(last_one, started, strict=True)]
    assert min(moved) > 1e-6
    with open(out / run / LOG) as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["train_loss"]) for row in rows] == [row["train_loss"] for row in saved["results"][run][1]]


def test_the_ranks_share_the_molecules_and_rank_0_alone_writes(two_processes):
    """Each rank predicts part of every batch (not all of it), and only rank 0 saves checkpoints:
    one per epoch of every run."""
    out, saved = two_processes
    first, second = saved["predicted"]
    assert 0 < second < first
    epochs = sum(settings.epochs for settings in RUNS.values()) + RESUMING.epochs - RUNS[RESUMED].epochs
    assert saved["saved"] == [epochs, 0]
    assert all((out / name / CHECKPOINT).exists() for name in RUNS)


def test_two_processes_resume_from_rank_0s_checkpoint(two_processes):
    """Two epochs, then a restart asked for three, equal three epochs in one go."""
    _, saved = two_processes
    resumed = saved["results"]["resumed"]
    assert [row["epoch"] for row in resumed[1]] == [1, 2, 3]
    _assert_same_run(resumed, saved["results"]["adam"], tolerance=1e-13)


def test_new_gate_layers_are_drawn_from_the_fine_tuning_seed():
    """Whatever random numbers a rank (or a run) drew before, its ridge heads become the same
    gated heads, and the global generator is left as it was."""
    settings = dataclasses.replace(RUNS["adam"], epochs=0)
    torch.manual_seed(1)
    first = tune_water(settings)[0]
    after = torch.rand(1)
    torch.manual_seed(1)
    torch.rand(7)
    second = tune_water(settings)[0]
    assert all(torch.equal(_flat(a), _flat(b)) for a, b in zip(first, second, strict=True))
    torch.manual_seed(1)
    assert torch.equal(torch.rand(1), after)


def test_fine_tuning_on_several_processes_is_not_refused():
    cfg = compose_config(["+experiment=water", "+finetune=matrix"])
    assert _stream_settings(cfg, Shard(world_size=2)) is not None


def test_torchrun_training_fine_tunes_and_writes_once(tmp_path):
    """``torchrun --nproc-per-node=2 -m nhamil.train +finetune=matrix``: a shared fit, two epochs of
    fine-tuning, one log and checkpoint, and a model with gated heads."""
    run = tmp_path / "run"
    overrides = [
        *tiny_water_run(tmp_path),
        "+finetune=matrix",
        "finetune.epochs=2",
        "finetune.batch_size=3",
        "finetune.hidden=4",
        "finetune.validation_fraction=0.25",
        f"hydra.run.dir={run}",
    ]
    _torchrun(["-m", "nhamil.train", *overrides], cwd=tmp_path)
    with open(run / LOG) as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]
    assert (run / CHECKPOINT).exists() and sorted(p.name for p in run.glob("*.json")) == ["metrics.json"]
    model = HamiltonianModel.load(run / "model.pt")
    assert all(type(fit).__name__ == "GatedHead" for _, fit in model.heads.values())
