pytest_plugins = ["hcqw.lab.pytest_plugin", "tests.support.resident"]  # resident: a QPU service kept running

import pytest


@pytest.fixture(autouse=True)
def hcqw_home(tmp_path_factory, monkeypatch):
    """Each test gets its own signing key and state directory (device queues), never the user's."""
    home = tmp_path_factory.mktemp("hcqw-home")
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(home / "checkpoint.key"))
    monkeypatch.setenv("HCQW_STATE_DIR", str(home / "state"))
    return home
