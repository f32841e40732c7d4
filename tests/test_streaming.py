"""Streamed and distributed ridge and sparse-kernel fits equal the in-memory, single-process fit
to round-off."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_fit import HEAD, SPARSE_KERNEL, fit_water, tiny_water_run

from nhamil.blocks import ON_SITE
from nhamil.config import compose_config
from nhamil.distributed import Shard, process_group
from nhamil.errors import InputError
from nhamil.heads import GatedSettings, KernelFit, KernelSettings, RidgeSettings, fit_ridge
from nhamil.heads.ridge import fold_of_each_sample
from nhamil.heads.streaming import RidgeSums, StreamSettings
from nhamil.model import HamiltonianModel
from nhamil.train import _stream_settings

pytestmark = pytest.mark.usefixtures("one_thread")

TESTS = Path(__file__).parent


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("intercept", [True, False])
def test_ridge_sums_over_chunks_equal_the_in_memory_fit(intercept):
    """Tall, correlated features (with an intercept: their mean 5x their spread): same alphas,
    weights to 1e-10."""
    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(30, 30, generator=generator, dtype=torch.float64) * torch.logspace(0, -3, 30).double()
    offset = 5.0 if intercept else 0.0
    x = torch.randn(200, 1 if intercept else 3, 30, generator=generator, dtype=torch.float64) @ mixing + offset
    y = 2 * x[..., :3] + 0.01 * torch.randn(*x.shape[:2], 3, generator=generator, dtype=torch.float64)
    groups, settings = torch.arange(200) // 3, RidgeSettings()
    expected = fit_ridge(x, y, groups, intercept=intercept, settings=settings)
    folds = fold_of_each_sample(groups, settings)
    sums = RidgeSums.zeros(int(folds.max()) + 1, 30, 3, "cpu")
    for start in range(0, 200, 17):
        sums.add(x[start : start + 17], y[start : start + 17], folds[start : start + 17])
    streamed = sums.fit(intercept=intercept, settings=settings)
    assert torch.equal(streamed.alphas, expected.alphas)
    assert _relative(streamed.weights, expected.weights) < 1e-10
    if intercept:
        assert _relative(streamed.feature_mean, expected.feature_mean) < 1e-14


def test_streamed_model_fit_equals_in_memory_fit():
    """Water SAPH, chunks of 2 frames against all features at once: alphas equal, weights and
    predictions to 1e-10."""
    streamed, in_memory = fit_water(12), fit_water(12, streaming=None)
    for key, (keys, fit) in in_memory.heads.items():
        assert streamed.heads[key][0] == keys
        assert torch.equal(streamed.heads[key][1].alphas, fit.alphas), key
        assert _relative(streamed.heads[key][1].weights, fit.weights) < 1e-10, key
    frames = _water_frames()
    assert _relative(torch.stack(streamed.predict(frames)), torch.stack(in_memory.predict(frames))) < 1e-10


def test_streamed_sparse_kernel_fit_equals_in_memory_fit():
    """The same active samples (FPS over every sample's invariants, gathered in a first pass), the
    same alphas, predictions to 1e-10. The weights agree to ~1e-8 only: the Nyström projection
    divides by the square roots of active-kernel eigenvalues down to 1e-12 of the largest, which
    magnifies the features' round-off in the directions the predictions hardly use."""
    streamed = fit_water(12, head=SPARSE_KERNEL)
    in_memory = fit_water(12, streaming=None, head=SPARSE_KERNEL)
    for key, (keys, fit) in in_memory.heads.items():
        assert streamed.heads[key][0] == keys
        assert _relative(streamed.heads[key][1].nystrom.active, fit.nystrom.active) < 1e-14, key
        assert torch.equal(streamed.heads[key][1].ridge.alphas, fit.ridge.alphas), key
    frames = _water_frames()
    assert _relative(torch.stack(streamed.predict(frames)), torch.stack(in_memory.predict(frames))) < 1e-10


def test_streamed_fit_with_an_onsite_kernel_beside_ridge_pairs_equals_in_memory_fit():
    """``onsite_head``: sparse kernel heads on-site, ridge heads for the pairs, streamed as in memory."""
    streamed = fit_water(12, onsite_head=SPARSE_KERNEL)
    in_memory = fit_water(12, streaming=None, onsite_head=SPARSE_KERNEL)
    for (kind, _), (_, fit) in in_memory.heads.items():
        assert isinstance(fit, KernelFit) == (kind.block_type == ON_SITE), kind
    for key, (keys, fit) in in_memory.heads.items():
        assert streamed.heads[key][0] == keys
        assert torch.equal(getattr(streamed.heads[key][1], "ridge", streamed.heads[key][1]).alphas,
                           getattr(fit, "ridge", fit).alphas), key  # fmt: skip
    frames = _water_frames()
    assert _relative(torch.stack(streamed.predict(frames)), torch.stack(in_memory.predict(frames))) < 1e-10


def test_a_sums_budget_splits_the_fit_into_passes_with_the_same_weights(monkeypatch):
    """A budget below one head's sums: one pass over the frames per head, the same weights."""
    calls = []
    accumulate = HamiltonianModel._accumulate
    monkeypatch.setattr(HamiltonianModel, "_accumulate", lambda *args: calls.append(args) or accumulate(*args))
    one = fit_water(12)
    one_pass = len(calls)
    passes = fit_water(12, streaming=StreamSettings(chunk_frames=2, sums_memory_gb=1e-9))
    assert len(calls) - one_pass == len(one.heads) * 6 > one_pass
    for key, (keys, fit) in one.heads.items():
        assert passes.heads[key][0] == keys
        assert torch.equal(passes.heads[key][1].weights, fit.weights), key


def _water_frames():
    from paper_data import WATER

    from nhamil.reference import read_frames

    return read_frames(WATER, ":12")


def _fit_on_two_gloo_processes(tmp_path, head: str) -> HamiltonianModel:
    """``torchrun --nproc-per-node=2 tests/distributed_fit.py`` (gloo); rank 0 alone writes."""
    output = tmp_path / "two.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    script = [str(TESTS / "distributed_fit.py"), str(output), "12", head]
    subprocess.run([*command, *script], env=env, check=True, timeout=300)
    saved = torch.load(output, weights_only=True)
    assert saved["world_size"] == 2 and list(tmp_path.iterdir()) == [output]
    return HamiltonianModel.from_state_dict(saved["state"])


def test_two_gloo_processes_fit_the_single_process_weights(tmp_path):
    """Ridge: the single-process alphas and weights to 1e-10."""
    two, one = _fit_on_two_gloo_processes(tmp_path, "ridge"), fit_water(12)
    for key, (_, fit) in one.heads.items():
        assert torch.equal(two.heads[key][1].alphas, fit.alphas), key
        assert _relative(two.heads[key][1].weights, fit.weights) < 1e-10, key


def test_two_gloo_processes_fit_the_single_process_sparse_kernel(tmp_path):
    """Sparse kernel: every rank's invariants and active samples gathered, so the same active
    samples and alphas as one process, and its predictions to 1e-10."""
    two, one = _fit_on_two_gloo_processes(tmp_path, "sparse_kernel"), fit_water(12, head=SPARSE_KERNEL)
    for key, (_, fit) in one.heads.items():
        assert _relative(two.heads[key][1].nystrom.active, fit.nystrom.active) < 1e-14, key
        assert torch.equal(two.heads[key][1].ridge.alphas, fit.ridge.alphas), key
    frames = _water_frames()
    assert _relative(torch.stack(two.predict(frames)), torch.stack(one.predict(frames))) < 1e-10


def test_streaming_refuses_heads_it_cannot_stream_and_bad_sizes():
    with pytest.raises(InputError, match="head.n_active"):
        StreamSettings().check(KernelSettings())
    with pytest.raises(InputError, match="head=ridge or head=sparse_kernel, not GatedSettings"):
        StreamSettings().check(GatedSettings())
    with pytest.raises(InputError, match="fit.chunk_frames=0"):
        StreamSettings(chunk_frames=0).check(HEAD)
    with pytest.raises(InputError, match="fit.sums_memory_gb=0"):
        StreamSettings(sums_memory_gb=0).check(HEAD)


def test_torchrun_training_writes_its_outputs_once(tmp_path):
    """``torchrun --nproc-per-node=2 -m nhamil.train``: one metrics.json and a model that loads."""
    run = tmp_path / "run"
    overrides = [
        *tiny_water_run(tmp_path),
        "fit.chunk_frames=3",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    subprocess.run([*command, "nhamil.train", *overrides], env=env, cwd=tmp_path, check=True, timeout=300)
    assert sorted(p.name for p in run.glob("*.json")) == ["metrics.json"]
    assert HamiltonianModel.load(run / "model.pt").heads


@pytest.mark.parametrize(
    ("overrides", "world_size", "message"),
    [
        (["fit.contraction_frames=4"], 1, "needs a streamed fit"),
        (["fit.sums_memory_gb=2"], 1, "fit.sums_memory_gb needs a streamed fit"),
    ],
)
def test_settings_a_streamed_or_distributed_fit_cannot_honour_are_named(overrides, world_size, message):
    cfg = compose_config(["+experiment=water", *overrides])
    with pytest.raises(InputError, match=message):
        _stream_settings(cfg, Shard(world_size=world_size))


def test_slurm_multi_launcher_composes_with_one_task_per_gpu():
    shown = subprocess.run(
        [sys.executable, "-m", "nhamil.train", "+experiment=water", "hydra/launcher=slurm_multi", "--cfg", "hydra"],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tasks_per_node: 4" in shown and "gpus_per_node: 4" in shown and "MASTER_ADDR" in shown


def test_a_slurm_job_of_several_tasks_without_a_rendezvous_is_refused(monkeypatch):
    """Else each task would train alone and all would write the same outputs."""
    for name in ("WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    with pytest.raises(InputError, match="slurm_multi"), process_group("cpu"):
        pass


def test_ranks_share_the_solves_by_their_cost():
    """One costly head and many cheap ones: dealt in turn, rank 0 would get the costly head and
    half the cheap ones (13 against 4); balanced, the costly one has a rank to itself."""
    costs = [9.0, *[1.0] * 8]
    owners = [Shard(rank, 2).owners(costs) for rank in range(2)]
    assert owners[0] == owners[1]  # every rank agrees without a message
    loads = [sum(c for c, o in zip(costs, owners[0], strict=True) if o == rank) for rank in range(2)]
    assert sorted(loads) == [8.0, 9.0]
    assert Shard().owners(costs) == [0] * len(costs)
