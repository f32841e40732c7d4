"""The sharded reference build (``python -m nhamil.reference``, issue 16 item 3): shards sharing a
cache compute disjoint structures, claims go stale and are taken over, live ones are skipped,
failures are recorded, a rerun reuses everything, threads reach PySCF, submitit_local runs it."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from omegaconf import OmegaConf
from test_reference import _waters

from nhamil.errors import InputError, one_line
from nhamil.reference import ProjectionSettings, ScfSettings, store
from nhamil.reference.build import build_shard, shard_order
from nhamil.reference.claims import claim_path, failure_path
from nhamil.reference.command import BuildFailedError, build_from_config, compose_build_config

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
RHF = ScfSettings(basis="sto-3g")
PROJECTION = ProjectionSettings()


def _build(frames, cache, **options):
    return build_shard(frames, RHF, PROJECTION, cache, **{"progress": False, **options})


def _record(cache: Path, atoms) -> Path:
    return store.cache_folder(cache, RHF, PROJECTION) / f"{store.geometry_hash(atoms.numbers, atoms.positions)}.h5"


def _claim(cache: Path, atoms, host: str, pid: int, age_s: float = 0.0) -> Path:
    """A claim file of another shard's run on ``atoms``, last refreshed ``age_s`` seconds ago."""
    path = claim_path(_record(cache, atoms))
    owner = {"host": host, "pid": pid, "shard": 7, "time": "2026-01-01T00:00:00Z", "token": "other"}
    path.write_text(json.dumps(owner))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]), "OPENBLAS_NUM_THREADS": "1"}


def test_each_shard_visits_its_own_structures_first_then_the_others_from_the_back():
    assert shard_order(7, 1, 3) == [1, 4, 6, 5, 3, 2, 0]
    assert sorted(shard_order(7, 2, 3)) == list(range(7))


#: One shard in a subprocess: it waits for the file ``go``, so that both shards start at once, and
#: each SCF takes 0.3 s longer, so that they overlap.
SHARD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from test_reference import _waters
    from nhamil.reference import ProjectionSettings, ScfSettings, store
    from nhamil.reference.build import build_shard

    shard, cache, folder = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    compute = store.compute_reference
    store.compute_reference = lambda *args: (time.sleep(0.3), compute(*args))[1]
    (folder / f"ready{shard}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    summary = build_shard(_waters(6), ScfSettings(basis="sto-3g"), ProjectionSettings(), cache, shard=shard,
                          n_shards=2, progress=False)
    (folder / f"summary{shard}.json").write_text(json.dumps(summary.to_dict()))
    """
)


def run_two_at_once(script: str, tmp_path: Path, output: str) -> list[dict]:
    """Run two copies of ``script`` (arguments: its number k, the cache ``tmp_path/cache``, and
    ``tmp_path``), each touching ``ready{k}`` and then waiting for ``go``, so that they start
    together. Assert both exit with 0 and return the ``{output}{k}.json`` each wrote."""
    processes = [
        subprocess.Popen([sys.executable, "-c", script, str(k), str(tmp_path / "cache"), str(tmp_path)], env=_env())
        for k in (0, 1)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{k}").exists() for k in (0, 1)) and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    assert [process.wait(timeout=240) for process in processes] == [0, 0]
    return [json.loads((tmp_path / f"{output}{k}.json").read_text()) for k in (0, 1)]


def test_two_shards_at_once_compute_disjoint_structures_and_together_all(tmp_path):
    first, second = run_two_at_once(SHARD, tmp_path, "summary")
    assert first["computed"] and second["computed"]
    assert not set(first["computed"]) & set(second["computed"])
    assert set(first["computed"]) | set(second["computed"]) == set(range(6))
    for summary in (first, second):
        skipped = {entry["frame"] for entry in summary["skipped"]}
        assert sorted([*summary["computed"], *summary["reused"], *skipped]) == list(range(6))
    assert not list((tmp_path / "cache").rglob("*.claim"))


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize(
    "owner",
    [
        pytest.param(lambda: (socket.gethostname(), _dead_pid(), 0.0), id="dead-pid-on-this-host"),
        pytest.param(lambda: ("another-node", 12345, 1000.0), id="not-refreshed-for-too-long"),
    ],
)
def test_a_stale_claim_is_taken_over(tmp_path, owner):
    frames = _waters(2)
    host, pid, age = owner()
    claim = _claim(tmp_path, frames[1], host, pid, age)
    summary = _build(frames, tmp_path, stale_after_s=600)
    assert sorted(summary.computed) == [0, 1]
    assert [(entry["frame"], entry["owner"]["host"]) for entry in summary.taken_over] == [(1, host)]
    assert not claim.exists() and _record(tmp_path, frames[1]).exists()


def test_a_live_claim_is_skipped_and_reported(tmp_path):
    frames = _waters(2)
    claim = _claim(tmp_path, frames[1], socket.gethostname(), os.getpid())
    summary = _build(frames, tmp_path)
    assert summary.computed == [0]
    assert [(entry["frame"], entry["owner"]["token"]) for entry in summary.skipped] == [(1, "other")]
    assert "1 skipped (claimed by other shards)" in summary.line()
    assert claim.exists() and not _record(tmp_path, frames[1]).exists()


def _count_scf_calls(monkeypatch) -> list[int]:
    calls, original = [], store.run_scf
    monkeypatch.setattr(store, "run_scf", lambda atoms, settings: calls.append(1) or original(atoms, settings))
    return calls


def test_a_resumed_run_reuses_everything(tmp_path, monkeypatch):
    frames = _waters(3)
    assert sorted(_build(frames, tmp_path, labels=[10, 11, 12]).computed) == [10, 11, 12]
    calls = _count_scf_calls(monkeypatch)
    again = _build(frames, tmp_path, labels=[10, 11, 12], shard=1, n_shards=2)
    assert (again.computed, sorted(again.reused), calls) == ([], [10, 11, 12], [])


def test_a_failure_is_recorded_reported_and_retried_only_on_request(tmp_path, monkeypatch):
    frames = _waters(3)
    compute = store.compute_reference

    def fails_for_frame_1(atoms, scf, projection):
        if np.array_equal(atoms.positions, frames[1].positions):
            raise RuntimeError("PySCF gave up")
        return compute(atoms, scf, projection)

    monkeypatch.setattr(store, "compute_reference", fails_for_frame_1)
    first = _build(frames, tmp_path)
    assert sorted(first.computed) == [0, 2]
    assert first.failed == [{"frame": 1, "error": "RuntimeError: PySCF gave up", "earlier": False}]
    record = _record(tmp_path, frames[1])
    assert json.loads(failure_path(record).read_text())["frame"] == 1 and not claim_path(record).exists()
    monkeypatch.setattr(store, "compute_reference", compute)
    second = _build(frames, tmp_path)
    assert second.computed == [] and second.failed == [{**first.failed[0], "earlier": True}]
    third = _build(frames, tmp_path, retry_failed=True)
    assert (third.computed, third.failed) == ([1], [])
    assert record.exists() and not failure_path(record).exists()


def _threads_seen(*_) -> tuple[int, int]:
    """(PySCF's threads, the BLAS libraries' threads) in this process."""
    from pyscf import lib
    from threadpoolctl import threadpool_info

    return lib.num_threads(), max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_threads_per_worker_reach_pyscf_in_process_and_in_the_workers(tmp_path, monkeypatch):
    seen, compute = [], store.compute_reference
    monkeypatch.setattr(store, "compute_reference", lambda *args: seen.append(_threads_seen()) or compute(*args))
    _build(_waters(1), tmp_path, threads_per_worker=2)
    assert seen == [(2, 2)]
    with store.worker_pool(1, threads=3) as pool:
        assert pool.submit(_threads_seen).result(timeout=120) == (3, 3)


def _water_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "waters.xyz"
    ase.io.write(path, _waters(n))
    return path


def _config(tmp_path: Path, *overrides: str):
    frames = _water_file(tmp_path, 3)
    return compose_build_config(
        [f"data.frames={frames}", f"data.cache_dir={tmp_path / 'cache'}", "data.n_workers=1", "reference.basis=sto-3g",
         "progress=false", *overrides]
    )  # fmt: skip


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["shard=2", "n_shards=2"], r"^shard=2 must be an integer with 0 <= shard < n_shards=2"),
        (["n_shards=0"], r"^n_shards=0 must be an integer >= 1"),
        (["threads_per_worker=0"], r"^threads_per_worker=0 must be an integer >= 1"),
        (["data.n_workers=0"], r"^data.n_workers=0 must be an integer >= 1"),
        (["stale_after_s=0"], r"^stale_after_s=0.0 must be > 0"),
        (["data.frames=${nhamil.data:nope.xyz}"], r"^data.frames: no data file 'nope.xyz' in .*; available: "),
        (["data.frames=/no/such/file.xyz"], r"^structure file /no/such/file.xyz does not exist"),
        (["index=5:9"], r"^index='5:9' selects none of the 3 frames of "),
        (["index=frames"], r"^index='frames' selects no frames of the 3 of "),
        (["+shards=2"], r"^unknown setting 'shards'"),
    ],
)
def test_bad_settings_are_one_line_input_errors_before_any_work(tmp_path, overrides, message):
    with pytest.raises(InputError, match=message) as error:
        build_from_config(_config(tmp_path, *overrides), tmp_path / "run")
    assert one_line(error.value) == str(error.value)
    assert not (tmp_path / "cache").exists()


def test_the_command_names_failed_frames_after_writing_its_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "compute_reference", lambda *args: (_ for _ in ()).throw(RuntimeError("no SCF")))
    with pytest.raises(
        BuildFailedError, match=r"3 structure\(s\) failed, frame\(s\) \[0, 1, 2\] .*RuntimeError: no SCF"
    ):
        build_from_config(_config(tmp_path, "index=0:3"), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["n_failed"], summary["n_computed"]) == (3, 0)


def test_the_command_reports_bad_input_as_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nhamil.reference", "shard=1", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("nhamil.reference: error: shard=1 must be an integer")


def test_the_command_builds_molecules_named_by_smiles(tmp_path):
    """``python -m nhamil.reference data=molecules`` resolves the SMILES source in a process of its own."""
    (tmp_path / "two.smi").write_text("C methane\nO water\n")
    result = subprocess.run(
        [sys.executable, "-m", "nhamil.reference", "data=molecules", f"data.molecules.smiles={tmp_path / 'two.smi'}",
         f"data.cache_dir={tmp_path / 'cache'}", "data.n_workers=1", "reference.basis=sto-3g", "progress=false",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["n_computed"] == 2


def test_submitit_local_multirun_builds_the_set_with_two_shards(tmp_path):
    frames = _water_file(tmp_path, 3)
    command = [
        sys.executable, "-m", "nhamil.reference", "-m", "hydra/launcher=submitit_local", "shard=0,1", "n_shards=2",
        f"data.frames={frames}", f"data.cache_dir={tmp_path / 'cache'}", "data.n_workers=1", "reference.basis=sto-3g",
        "progress=false", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=480, check=True)
    summaries = [json.loads((tmp_path / "sweep" / str(k) / "summary.json").read_text()) for k in (0, 1)]
    assert [(s["shard"], s["n_shards"]) for s in summaries] == [(0, 2), (1, 2)]
    computed = [frame for s in summaries for frame in s["computed"]]
    assert sorted(computed) == [0, 1, 2]
    assert len(list(store.cache_folder(tmp_path / "cache", RHF, PROJECTION).glob("*.h5"))) == 3


def test_the_command_fills_the_cache_folder_that_training_reads():
    from nhamil.config import compose_config
    from nhamil.train import target_from_config

    build, train = compose_build_config(["reference.basis=sto-3g"]), compose_config(["reference.basis=sto-3g"])
    target = target_from_config(train)
    scf = ScfSettings(**OmegaConf.to_container(build.reference))
    projection = ProjectionSettings(**OmegaConf.to_container(build.projection))
    assert store.settings_hash(scf, projection) == store.settings_hash(target.scf, target.projection)
    assert (build.data.cache_dir, build.data.frames) == (train.data.cache_dir, train.data.frames)
