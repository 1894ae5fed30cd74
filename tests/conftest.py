pytest_plugins = ["hcqw.lab.pytest_plugin", "tests.support.resident"]  # resident: a QPU service kept running

import pytest


@pytest.fixture(autouse=True)
def hcqw_home(tmp_path_factory, monkeypatch):
    """Each test gets its own signing key and state directory (device queues), never the user's."""
    home = tmp_path_factory.mktemp("hcqw-home")
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(home / "checkpoint.key"))
    monkeypatch.setenv("HCQW_STATE_DIR", str(home / "state"))
    return home


_GROUP_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Time per test group (the folder under tests/, or the module at its top), setup and teardown included."""
    group = "/".join(report.nodeid.split("::", 1)[0].split("/")[:2])
    _GROUP_SECONDS[group] = _GROUP_SECONDS.get(group, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """Where the suite's time goes, so CI's time budget is spent knowingly."""
    if not _GROUP_SECONDS:
        return
    terminalreporter.section("time per test group")
    for group, seconds in sorted(_GROUP_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {group}")
    terminalreporter.write_line(f"{sum(_GROUP_SECONDS.values()):8.1f} s  in all")
