"""pytest plugin (loaded by ``tests/conftest.py``): with ``NHAMIL_STRICT_SKIPS=1``, as ``.ci/run``
sets, a test skipped for any reason other than a missing CUDA device (``needs a CUDA device``)
or an absent optional package (``pytest.importorskip``: ``could not import ...``) fails the
session, and the summary lists those tests with their reasons. Exit codes of failures (1) and
of "no tests ran" (5) are kept; a clean run with a refused skip exits 1."""

from __future__ import annotations

import os

import pytest

ENVIRONMENT = "NHAMIL_STRICT_SKIPS"
#: How the skip reasons that strict mode accepts begin.
ALLOWED = ("needs a CUDA device", "could not import ")


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(ENVIRONMENT) == "1":
        config.pluginmanager.register(StrictSkips(), "nhamil-strict-skips")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason of a skip report, without pytest's ``Skipped: `` prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


class StrictSkips:
    """Collects the refused skips of a session and fails it if there are any."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._check(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._check(report)

    def _check(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if not reason.startswith(ALLOWED):
                self.refused.append((report.nodeid, reason))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.refused and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.refused:
            return
        terminalreporter.section(
            f"{ENVIRONMENT}=1: skips other than a missing CUDA device or optional package", red=True
        )
        for nodeid, reason in self.refused:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"{len(self.refused)} test(s) skipped for a reason strict mode refuses: the run fails")
