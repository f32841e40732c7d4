"""Training's reference build shares the cache with other processes (issue 16): it claims what it
computes, waits for what a live shard or training job holds, takes over stale claims, and names a
failure that another run recorded."""

import os
import socket
import textwrap
import threading
import time

import numpy as np
import pytest
from test_reference import _waters
from test_reference_build import PROJECTION, RHF, _claim, _dead_pid, _record, run_two_at_once

from nhamil.errors import InputError, one_line
from nhamil.reference import build_reference_set, store
from nhamil.reference.claims import claim_path, failure_path, new_owner, write_failure

LABELS = [104, 105]


def _build(frames, cache, **options):
    options = {"n_workers": 1, "progress": False, "labels": LABELS[: len(frames)], **options}
    return build_reference_set(frames, RHF, PROJECTION, cache, **options)


def _count_computations(monkeypatch) -> list[int]:
    calls, compute = [], store.compute_reference
    monkeypatch.setattr(store, "compute_reference", lambda *args: calls.append(1) or compute(*args))
    return calls


def _later(seconds: float, action) -> threading.Thread:
    """Run ``action`` in a thread after ``seconds``, as another process would."""
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def test_a_structure_held_by_a_live_owner_is_waited_for_and_read_not_computed(tmp_path, monkeypatch, capsys):
    frames = _waters(2)
    (theirs,) = _build(frames[1:], tmp_path / "elsewhere")
    record = _record(tmp_path / "cache", frames[1])
    claim = _claim(tmp_path / "cache", frames[1], socket.gethostname(), os.getpid())
    calls = _count_computations(monkeypatch)
    owner = _later(1.0, lambda: (store.write_record(theirs, record), claim.unlink()))
    start = time.monotonic()
    records = _build(frames, tmp_path / "cache", progress=True)
    owner.join()
    assert len(calls) == 1 and time.monotonic() - start > 1.0
    assert np.array_equal(records[1].fock, theirs.fock) and records[1].e_tot == theirs.e_tot
    err = capsys.readouterr().err
    assert "waiting on 1 structure(s) held by others" in err
    assert err.strip().splitlines()[-1].startswith("PySCF reference: 1 computed, 0 reused from ")
    assert err.strip().endswith(", 1 computed by other processes, 0 not converged")
    assert not list(record.parent.glob("*.claim*"))


@pytest.mark.parametrize(
    "owner, options",
    [
        pytest.param(lambda: (socket.gethostname(), _dead_pid()), {}, id="dead-pid-on-this-host"),
        pytest.param(
            lambda: ("another-node", 12345), {"stale_after_s": 1.0, "poll_s": 0.1}, id="stops-refreshing-while-held"
        ),
    ],
)
def test_a_stale_claim_is_taken_over_and_computed(tmp_path, monkeypatch, owner, options):
    frames = _waters(2)
    claim = _claim(tmp_path, frames[1], *owner())
    calls = _count_computations(monkeypatch)
    records = _build(frames, tmp_path, **options)
    assert len(calls) == 2 and not claim.exists()
    assert store.read_record(_record(tmp_path, frames[1])).e_tot == records[1].e_tot


def _fail(record) -> None:
    owner = {**new_owner(7), "host": "another-node"}
    write_failure(record, 105, "RuntimeError: PySCF gave up", owner)


@pytest.mark.parametrize("when", ["before", "while-waited-for"])
def test_a_failure_recorded_by_another_owner_is_a_one_line_input_error(tmp_path, monkeypatch, when):
    frames = _waters(2)
    record = _record(tmp_path, frames[1])
    if when == "before":
        _fail(record)
    else:
        claim = _claim(tmp_path, frames[1], socket.gethostname(), os.getpid())
        owner = _later(0.5, lambda: (_fail(record), claim.unlink()))
    calls = _count_computations(monkeypatch)
    with pytest.raises(
        InputError,
        match=r"^the reference computation of frame\(s\) \[105\] of the data file failed in another run "
        r"\(frame 105: RuntimeError: PySCF gave up; host another-node, .*delete .*\.failed\.json",
    ) as error:
        _build(frames, tmp_path)
    if when != "before":
        owner.join()
    assert one_line(error.value) == str(error.value)
    assert len(calls) == (0 if when == "before" else 1)
    assert failure_path(record).exists() and not claim_path(record).exists() and not record.exists()


#: One training build in a subprocess: it waits for the file ``go``, so that both start at once, and
#: each SCF takes 0.3 s longer, so that they overlap; it writes what it computed and read.
TRAINING = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from test_reference import _waters
    from nhamil.reference import ProjectionSettings, ScfSettings, build_reference_set, store

    job, cache, folder = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    computed, compute = [], store.compute_reference
    store.compute_reference = lambda *args: (computed.append(1), time.sleep(0.3), compute(*args))[2]
    (folder / f"ready{job}").touch()
    while not (folder / "go").exists():
        time.sleep(0.01)
    records = build_reference_set(_waters(4), ScfSettings(basis="sto-3g"), ProjectionSettings(), cache,
                                  n_workers=1, progress=False)
    result = {"computed": len(computed), "e_tot": [record.e_tot for record in records]}
    (folder / f"job{job}.json").write_text(json.dumps(result))
    """
)


def test_two_training_jobs_on_one_cache_compute_each_structure_once(tmp_path):
    first, second = run_two_at_once(TRAINING, tmp_path, "job")
    assert first["computed"] + second["computed"] == 4
    assert first["e_tot"] == second["e_tot"]
    assert not list((tmp_path / "cache").rglob("*.claim*"))
