"""hcqw.timeline.events: finding and reading the metrics logs of a run."""

from __future__ import annotations

import pytest

from hcqw.metrics import MetricsLog
from hcqw.timeline.events import TimelineError, find_metrics, load_run


def test_find_metrics_collects_every_workflows_log_and_explains_a_wrong_path(tmp_path):
    for wf in ("w0", "w1"):
        MetricsLog(tmp_path / "cell" / wf / "metrics" / "qpu.jsonl").record("hold", workflow=wf, node="q1", start=0, end=1)
    (tmp_path / "cell" / "stray.jsonl").write_text("")
    found = find_metrics(tmp_path / "cell")
    assert [p.parent.parent.name for p in found] == ["w0", "w1"]
    assert find_metrics(found[0]) == [found[0]]
    assert {e.workflow for e in load_run(tmp_path / "cell")} == {"w0", "w1"}
    with pytest.raises(TimelineError, match="no such file"):
        find_metrics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TimelineError, match="no metrics/qpu.jsonl"):
        find_metrics(tmp_path / "empty")
