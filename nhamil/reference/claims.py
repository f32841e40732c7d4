"""Claim and failure files: shards of a reference build and training jobs that share one cache
folder never compute the same structure twice.

Beside each record ``<geometry_hash>.h5`` (see ``store.py``) a shard that is about to compute it
creates ``<geometry_hash>.claim`` with ``O_CREAT | O_EXCL`` (atomic: of shards racing for it, one
wins), holding its owner as JSON: host, pid, shard, start time (UTC) and a token unique to the
shard's run. While it computes, a heartbeat thread refreshes the modification time of every claim
it holds. A claim is stale, and taken over, when its owner is dead (same host, pid gone) or its
modification time is older than ``stale_after_s`` (an owner on another host that stopped beating:
killed, or its node lost); taking over happens under a ``<geometry_hash>.claim.takeover`` file
(again ``O_EXCL``) and only if the claim still holds the stale owner's token, so two shards
never take over the same claim. A claim is removed when its record is written or its
computation fails; a failure leaves ``<geometry_hash>.failed.json`` (the frame and the error),
so later runs report it instead of retrying it silently. A training job takes part as an owner of
shard ``None`` (``build.compute_missing``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nhamil.atomic import atomic_path

CLAIM_SUFFIX = ".claim"
FAILURE_SUFFIX = ".failed.json"
TAKEOVER_SUFFIX = ".claim.takeover"


def claim_path(record: Path) -> Path:
    """The claim file of the record ``record`` (``<hash>.h5`` -> ``<hash>.claim``)."""
    return record.with_suffix(CLAIM_SUFFIX)


def failure_path(record: Path) -> Path:
    """The failure file of the record ``record`` (``<hash>.h5`` -> ``<hash>.failed.json``)."""
    return record.with_suffix(FAILURE_SUFFIX)


def new_owner(shard: int | None) -> dict:
    """This process as the owner of claims: host, pid, shard (None: a training job), start time
    (UTC), a fresh token."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "shard": shard,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "token": uuid.uuid4().hex,
    }


def read_owner(path: Path) -> dict | None:
    """The owner a claim (or takeover) file holds; None if it is gone, ``{}`` if it is still
    being written or unreadable (then only its age makes it stale)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def is_stale(path: Path, owner: dict, stale_after_s: float) -> bool:
    """True if the claim file ``path`` of ``owner`` was not refreshed for ``stale_after_s``
    seconds, or its owner ran on this host and its pid is gone."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if age > stale_after_s:
        return True
    return owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) and not _alive(owner["pid"])


def _alive(pid: int) -> bool:
    """True if a process ``pid`` exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create(path: Path, owner: dict) -> bool:
    """Create ``path`` holding ``owner`` if it does not exist (atomically); True if created."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps(owner))
    return True


def _remove_own(path: Path, owner: dict) -> None:
    """Remove the claim ``path`` if it still holds ``owner``'s token."""
    held = read_owner(path)
    if held is not None and held.get("token") == owner["token"]:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Claim:
    """The outcome of asking for a structure: ``ours`` (then ``previous`` is the stale owner taken
    over, if any) or not (then ``previous`` is the live owner holding it)."""

    ours: bool
    previous: dict | None = None


class ShardClaims:
    """The claims of one shard's run: :meth:`take`, :meth:`release`; as a context manager, it
    refreshes the claims it holds every ``stale_after_s / 5`` seconds and releases all of them
    at the end (also on an error or an interrupt)."""

    def __init__(self, owner: dict, stale_after_s: float):
        self.owner = owner
        self.stale_after_s = stale_after_s
        self._held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def take(self, record: Path) -> Claim:
        """Claim the record ``record``: create its claim file, or take over a stale one."""
        path = claim_path(record)
        if _create(path, self.owner):
            return self._hold(path)
        holder = read_owner(path)
        if holder is None:
            return self.take(record)
        if not is_stale(path, holder, self.stale_after_s):
            return Claim(False, holder)
        return self._take_over(path, holder)

    def release(self, record: Path) -> None:
        """Remove the claim of ``record`` if this shard holds it."""
        path = claim_path(record)
        with self._lock:
            self._held.discard(path)
        _remove_own(path, self.owner)

    def _hold(self, path: Path, previous: dict | None = None) -> Claim:
        with self._lock:
            self._held.add(path)
        return Claim(True, previous)

    def _take_over(self, path: Path, stale: dict) -> Claim:
        """Replace the stale claim ``path`` of ``stale`` by ours, under its takeover file; if
        another shard is taking it over (or took it), it is theirs."""
        lock = path.with_suffix(TAKEOVER_SUFFIX)
        if not _create(lock, self.owner):
            if is_stale(lock, read_owner(lock) or {}, self.stale_after_s):
                lock.unlink(missing_ok=True)
            return Claim(False, read_owner(path) or stale)
        try:
            current = read_owner(path)
            if current is not None and current.get("token") != stale.get("token"):
                return Claim(False, current)
            path.unlink(missing_ok=True)
            if _create(path, self.owner):
                return self._hold(path, stale)
            return Claim(False, read_owner(path) or {})
        finally:
            lock.unlink(missing_ok=True)

    def __enter__(self) -> ShardClaims:
        threading.Thread(target=self._beat, name="nhamil-claim-heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:
            held, self._held = self._held, set()
        for path in held:
            _remove_own(path, self.owner)

    def _beat(self) -> None:
        """Refresh the modification time of every held claim until the run ends."""
        while not self._stop.wait(self.stale_after_s / 5):
            with self._lock:
                held = list(self._held)
            for path in held:
                try:
                    os.utime(path)
                except FileNotFoundError:
                    continue


def write_failure(record: Path, frame: int, error: str, owner: dict) -> None:
    """Write the failure file of ``record`` (atomically): frame ``frame`` of the data file failed
    with ``error`` (one line), in the run of ``owner``."""
    text = json.dumps({"frame": frame, "error": error, **{k: owner[k] for k in ("host", "pid", "shard", "time")}})
    with atomic_path(failure_path(record)) as temporary:
        temporary.write_text(text + "\n")


def read_failure(record: Path) -> dict | None:
    """What the failure file of ``record`` says (``frame``, ``error``, the owner), None if none."""
    owner = read_owner(failure_path(record))
    if owner == {}:
        return {"error": f"unreadable failure file {failure_path(record)}"}
    return owner


@contextmanager
def claims_of(shard: int | None, stale_after_s: float) -> Iterator[ShardClaims]:
    """The claims of a new run of shard ``shard`` (None: a training job; see :class:`ShardClaims`)."""
    with ShardClaims(new_owner(shard), stale_after_s) as claims:
        yield claims
