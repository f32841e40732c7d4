"""One-line reports of user errors by the command-line tools."""

import errno

import pytest

from nhamil.errors import DataFileError, InputError, reported_as_one_line


def test_user_error_is_one_line_on_stderr_with_exit_status_2(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info, reported_as_one_line("nhamil.x"):
        raise DataFileError("cache file a.h5 is damaged:\n  checksum differs")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "nhamil.x: error: cache file a.h5 is damaged: checksum differs\n"


def test_full_disk_is_named_with_its_path(capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit), reported_as_one_line("nhamil.x"):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/run/model.pt")
    assert "no space left on /tmp/run/model.pt" in capsys.readouterr().err


def test_full_traceback_on_request_and_for_bugs(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(InputError), reported_as_one_line("nhamil.x"):
        raise InputError("bad split")
    monkeypatch.delenv("HYDRA_FULL_ERROR")
    with pytest.raises(ZeroDivisionError), reported_as_one_line("nhamil.x"):
        raise ZeroDivisionError("a bug keeps its traceback")
