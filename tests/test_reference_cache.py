"""The reference cache under faults: damaged and misplaced files, full disks, killed builds,
and what the messages say (issue 13 b, g, h, i)."""

import errno
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase
import ase.build
import faulty_jobs  # tests/ is on sys.path; the spawned workers import it from there too
import h5py
import numpy as np
import pytest
from test_reference import _waters

from nhamil.config import compose_config
from nhamil.errors import DataFileError, one_line, reported_as_one_line
from nhamil.reference import (
    ProjectionSettings,
    ScfSettings,
    UnconvergedSCFError,
    build_reference_set,
    store,
)
from nhamil.train import train

REPO = Path(__file__).resolve().parents[1]
RHF = ScfSettings(basis="sto-3g")
PROJECTION = ProjectionSettings()
LABELS = [104, 105, 114, 503]


def _build(frames, cache, **options):
    options = {"n_workers": 1, "progress": False, "labels": LABELS[: len(frames)], **options}
    return build_reference_set(frames, RHF, PROJECTION, cache, **options)


def _path(cache: Path, atoms: ase.Atoms) -> Path:
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    return folder / f"{store.geometry_hash(atoms.numbers, atoms.positions)}.h5"


def _count_scf_calls(monkeypatch) -> list[int]:
    calls = []
    original = store.run_scf

    def counted(atoms, settings):
        calls.append(1)
        return original(atoms, settings)

    monkeypatch.setattr(store, "run_scf", counted)
    return calls


def _change_one_saph_number(path: Path) -> None:
    with h5py.File(path, "r+") as file:
        file["saph"][0, 0] += 1e-3


# --- damaged and misplaced files (b) ---------------------------------------------------------------


def test_changed_number_is_named_then_rebuilt_on_request(tmp_path, monkeypatch):
    frames = _waters(3)
    first = _build(frames, tmp_path)
    victim = _path(tmp_path, frames[1])
    _change_one_saph_number(victim)
    with pytest.raises(
        DataFileError,
        match=rf"{victim} \(frame 105 of the data file\) is damaged \(checksum"
        r".*data.rebuild_damaged=true",
    ) as error:
        _build(frames, tmp_path)
    assert "\n" not in str(error.value)
    calls = _count_scf_calls(monkeypatch)
    with pytest.warns(UserWarning, match=f"rebuilding.*{victim}"):
        rebuilt = _build(frames, tmp_path, rebuild_damaged=True)
    assert len(calls) == 1
    np.testing.assert_allclose(rebuilt[1].saph, first[1].saph, atol=1e-10, rtol=0)
    assert not list(victim.parent.glob(".*"))
    _build(frames, tmp_path)


def test_copied_file_is_named_as_misplaced(tmp_path):
    frames = _waters(2)
    _build(frames, tmp_path)
    shutil.copyfile(_path(tmp_path, frames[1]), _path(tmp_path, frames[0]))
    with pytest.raises(
        DataFileError,
        match=rf"{_path(tmp_path, frames[0])} \(frame 104 of the data file\) is "
        "misplaced",
    ):
        _build(frames, tmp_path)


def test_every_damaged_file_is_named_in_one_pass(tmp_path):
    frames = _waters(4)
    _build(frames, tmp_path)
    for atoms in frames:
        _change_one_saph_number(_path(tmp_path, atoms))
    with pytest.raises(DataFileError, match="4 reference cache file") as error:
        _build(frames, tmp_path)
    message = str(error.value)
    assert all(str(_path(tmp_path, atoms)) in message for atoms in frames[:3])
    assert "and 1 more" in message


# --- messages name the frames of the data file (g) -------------------------------------------------


def test_unconverged_frames_are_named_by_their_frame_numbers(tmp_path):
    with pytest.raises(
        UnconvergedSCFError,
        match=r"frame\(s\) \[104, 105, 114\] of the data file.*"
        r"data\.allow_unconverged=true",
    ) as error:
        build_reference_set(
            _waters(3),
            ScfSettings(basis="sto-3g", max_cycle=1),
            PROJECTION,
            tmp_path,
            n_workers=1,
            progress=False,
            labels=LABELS[:3],
        )
    assert error.value.frames == LABELS[:3]


def test_train_names_data_file_frames_and_takes_the_cache_settings(tmp_path):
    def config(*overrides):
        return compose_config(
            [
                "+experiment=water",
                "split.train=[100,103]",
                "split.test=[503,504]",
                f"data.cache_dir={tmp_path / 'cache'}",
                "data.n_workers=1",
                "reference.max_cycle=1",
                *overrides,
            ]
        )

    with pytest.raises(UnconvergedSCFError, match=r"\[100, 101, 102, 503\]"):
        train(config(), tmp_path / "run")
    victim = min((tmp_path / "cache").glob("*/*.h5"))
    _change_one_saph_number(victim)
    with pytest.raises(DataFileError, match=f"{victim}"):
        train(config(), tmp_path / "run")
    with pytest.warns(UserWarning, match="rebuilding"), pytest.raises(UnconvergedSCFError):
        train(config("data.rebuild_damaged=true"), tmp_path / "run")
    assert config("data.allow_unconverged=true").data.allow_unconverged


# --- progress output -----------------------------------------------------------------------------------


def test_cached_build_shows_no_bar_and_one_summary_line(tmp_path, capsys):
    frames = _waters(2)
    _build(frames, tmp_path, progress=True)
    assert "2 computed, 0 reused" in capsys.readouterr().err
    _build(frames, tmp_path, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("PySCF reference: 0 computed, 2 reused from ")
    assert lines[0].endswith(", 0 not converged")


# --- a full disk (i) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raised",
    [OSError(faulty_jobs.H5PY_FULL_DISK), OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))],
    ids=["h5py", "errno"],
)
def test_full_disk_is_one_line_and_keeps_the_written_records(tmp_path, monkeypatch, capsys, raised):
    frames = _waters(3, seed=1)
    original = h5py.Group.create_dataset
    written = []

    def filling(group, name, *args, **kwargs):
        written.append(name)
        if len(written) > len(store._ARRAYS):
            raise raised
        return original(group, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", filling)
    with pytest.raises(SystemExit), reported_as_one_line("nhamil-train"):
        _build(frames, tmp_path)
    victim = _path(tmp_path, frames[1])
    assert (
        capsys.readouterr().err == f"nhamil-train: error: no space left on {victim}: free some space and run again "
        "(finished work is kept)\n"
    )
    with pytest.raises(OSError) as error:
        _build(frames, tmp_path)
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(victim))
    assert "no space left on" in one_line(error.value)
    assert not list(victim.parent.glob(".*"))
    monkeypatch.setattr(h5py.Group, "create_dataset", original)
    calls = _count_scf_calls(monkeypatch)
    _build(frames, tmp_path)
    assert len(calls) == 2


def test_full_disk_in_a_worker_comes_back_as_one_error(tmp_path, monkeypatch):
    frames = _waters(4, seed=2)
    _build(frames[:1], tmp_path)
    victim = _path(tmp_path, frames[1])
    monkeypatch.setenv("NHAMIL_TEST_FULL", str(victim))
    original = store._compute_and_store
    monkeypatch.setattr(store, "_compute_and_store", faulty_jobs.full_disk_for_victim)
    with pytest.raises(OSError) as error:
        _build(frames, tmp_path, n_workers=2)
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(victim))
    assert not multiprocessing.active_children()
    kept = sorted(victim.parent.glob("*.h5"))
    assert victim not in kept and not list(victim.parent.glob(".*"))
    monkeypatch.setattr(store, "_compute_and_store", original)
    calls = _count_scf_calls(monkeypatch)
    _build(frames, tmp_path)
    assert len(calls) == len(frames) - len(kept)


# --- workers end with their parent (h) -------------------------------------------------------------

_STALLED_BUILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import ase.build
    from nhamil.reference import ProjectionSettings, ScfSettings, store

    def stall(atoms, scf, projection, path):
        (path.parent / f"worker-{os.getpid()}.pid").touch()
        time.sleep(300)

    if __name__ == "__main__":
        store._compute_and_store = stall
        frames = [ase.build.molecule("H2O") for _ in range(4)]
        for k, atoms in enumerate(frames):
            atoms.positions[0, 0] += 0.01 * k
        store.build_reference_set(frames, ScfSettings(), ProjectionSettings(), sys.argv[1], n_workers=2,
                                  progress=False)
""")


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie awaiting its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes through /proc")
@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_when_the_main_process_is_killed(tmp_path, signal_number):
    script = tmp_path / "stalled_build.py"
    script.write_text(_STALLED_BUILD)
    parent = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "cache")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])},
    )
    workers = []
    try:
        assert _wait_for(lambda: len(list(tmp_path.glob("cache/*/worker-*.pid"))) == 2, 120), "workers never started"
        workers = [int(p.stem.split("-")[1]) for p in tmp_path.glob("cache/*/worker-*.pid")]
        parent.send_signal(signal_number)
        parent.wait(30)
        assert _wait_for(lambda: not any(_alive(pid) for pid in workers), 5), "workers outlived their parent"
    finally:
        parent.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
