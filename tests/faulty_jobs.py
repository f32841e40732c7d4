"""Worker jobs with faults, for tests of the reference build's process pool: a spawned worker
imports this module by name (``tests/`` is on its ``sys.path``), and in that fresh process
``nhamil.reference.store`` is not monkeypatched."""

import os
from unittest import mock

import h5py

from nhamil.reference import store

#: What h5py raises when HDF5 cannot write: the errno only in the message.
H5PY_FULL_DISK = (
    "Unable to synchronously create dataset (file write failed: time = Tue Dec  1 20:00:00 2026, "
    "filename = 'x.h5', file descriptor = 5, errno = 28, error message = 'No space left on device', "
    "buf = 0x1, total write size = 800, bytes this sub-write = 800, bytes actually written = "
    "18446744073709551615, offset = 0)"
)


def full_disk_for_victim(atoms, scf, projection, path):
    """``store._compute_and_store``, whose write finds the disk full for the path in the
    environment variable ``NHAMIL_TEST_FULL``."""
    if str(path) != os.environ["NHAMIL_TEST_FULL"]:
        return store._compute_and_store(atoms, scf, projection, path)
    with mock.patch.object(h5py.Group, "create_dataset", side_effect=OSError(H5PY_FULL_DISK)):
        return store._compute_and_store(atoms, scf, projection, path)
