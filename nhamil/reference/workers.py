"""Worker processes that end with their parent.

A PySCF worker holds about 400 MB; if the main process is killed (SIGKILL, SIGTERM) its
``ProcessPoolExecutor`` cannot shut the workers down, and they would run on, orphaned, forever.
:func:`die_with_parent` (called in the worker initializer) makes each worker end when its parent
does: on Linux the kernel sends it SIGTERM (``prctl(PR_SET_PDEATHSIG)``; it fires when the
thread that started the worker ends, and ``ProcessPoolExecutor`` with ``spawn`` starts workers
in the thread that submits, which keeps the pool until it is shut down); everywhere, a daemon
thread also polls ``os.getppid()`` and exits the worker once the parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1

#: Seconds between two looks of the polling thread at the parent's pid.
POLL_SECONDS = 0.5


def die_with_parent(parent_pid: int) -> None:
    """End this process (exit status 1, or SIGTERM on Linux) when process ``parent_pid``, its
    parent, ends; to be called first thing in a worker."""
    if sys.platform.startswith("linux"):
        _request_parent_death_signal()
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="nhamil-parent-watch", daemon=True).start()


def _request_parent_death_signal() -> None:
    """Ask the Linux kernel for SIGTERM when the parent ends; silently nothing without libc."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os._exit(1)
