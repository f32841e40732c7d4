"""Errors that name a user's mistake, and how the command-line tools report them.

Library code raises :class:`InputError` (a ``ValueError``) for bad input: a setting, a
structure, a split, a file's content. Its message is one line that names the thing at fault
(the file, the structure and its atoms, the setting) and, where there is one, the remedy.
The command-line entry points wrap their work in :func:`reported_as_one_line`, which prints
such errors as ``PROGRAM: error: MESSAGE`` on stderr and exits with status 2; set
``HYDRA_FULL_ERROR=1`` (Hydra's own switch, honoured by every nhamil command) for the traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class InputError(ValueError):
    """Bad input: a setting, a structure, a split or a file's content; the message names it."""


class DataFileError(InputError):
    """A file that is missing, damaged, or not what it claims to be; the message names the path."""


#: Errors a user can cause and mend without reading a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def full_tracebacks() -> bool:
    """True when ``HYDRA_FULL_ERROR=1``: errors propagate with their traceback."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; a full disk is said as such, with the path."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" on {err.filename}" if err.filename else ""
        return f"no space left{where}: free some space and run again (finished work is kept)"
    return " ".join(str(err).split()) or type(err).__name__


@contextmanager
def reported_as_one_line(program: str) -> Iterator[None]:
    """Run a command's body; print a user error (or a full disk) as ``PROGRAM: error: ...`` and
    exit with status 2, unless :func:`full_tracebacks`."""
    try:
        yield
    except (*USER_ERRORS, OSError) as err:
        if full_tracebacks() or not (isinstance(err, USER_ERRORS) or getattr(err, "errno", None) == errno.ENOSPC):
            raise
        print(f"{program}: error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None
