"""The CI skip gate (``strict_skips``): with NHAMIL_STRICT_SKIPS=1, only skips for a missing CUDA
device or an absent optional package pass; anything else fails the run and is listed."""

import pytest
from strict_skips import ENVIRONMENT

TESTS = """
import pytest

def test_passes():
    pass

@pytest.mark.skipif(True, reason="needs a CUDA device")
def test_on_gpu():
    pass

def test_optional_package():
    pytest.importorskip("nhamil_no_such_package")

def test_wants_data():
    pytest.skip("reference data folder ../shared is absent")
"""


def _run(pytester: pytest.Pytester, monkeypatch, source: str, strict: bool) -> pytest.RunResult:
    pytester.makepyfile(test_tiny=source, test_other="def test_other_passes():\n    pass\n")
    if strict:
        monkeypatch.setenv(ENVIRONMENT, "1")
    else:
        monkeypatch.delenv(ENVIRONMENT, raising=False)
    return pytester.runpytest("-p", "strict_skips")


def test_a_skip_for_missing_data_fails_the_run_and_is_named(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, TESTS, strict=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*test_tiny.py::test_wants_data: reference data folder ../shared is absent",
            "1 test(s) skipped for a reason strict mode refuses*",
        ]
    )
    assert "test_on_gpu:" not in result.stdout.str() and "test_optional_package:" not in result.stdout.str()


def test_cuda_and_optional_package_skips_pass(pytester, monkeypatch):
    allowed = TESTS.replace('pytest.skip("reference data folder ../shared is absent")', "pass")
    assert _run(pytester, monkeypatch, allowed, strict=True).ret == pytest.ExitCode.OK


def test_the_gate_is_off_without_the_variable(pytester, monkeypatch):
    assert _run(pytester, monkeypatch, TESTS, strict=False).ret == pytest.ExitCode.OK


def test_failures_and_empty_runs_keep_their_exit_codes(pytester, monkeypatch):
    failing = TESTS + "\ndef test_fails():\n    assert False\n"
    assert _run(pytester, monkeypatch, failing, strict=True).ret == pytest.ExitCode.TESTS_FAILED
    pytester.makepyfile(test_none="")
    monkeypatch.setenv(ENVIRONMENT, "1")
    assert pytester.runpytest("-p", "strict_skips", "test_none.py").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_module_level_skip_is_refused_too(pytester, monkeypatch):
    source = 'import pytest\npytest.skip("no data", allow_module_level=True)\n'
    result = _run(pytester, monkeypatch, source, strict=True)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["test_tiny.py: no data"])
