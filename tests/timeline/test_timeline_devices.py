"""hcqw.timeline with several devices: which device each event used, per-device figures and totals, one lane per device."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.device.qsim import QsimBackend
from hcqw.embedded import run_split
from hcqw.metrics import MetricsLog
from hcqw.timeline.analysis import consistency_problems, quantum_nodes, summarize
from hcqw.timeline.devices import resolve_devices
from hcqw.timeline.events import Event, load_run
from hcqw.timeline.layout import layout
from hcqw.timeline.report import format_table, table_rows
from tests.timeline.timelines import ev, hand_made, make_workflows

Q1, Q2 = "hcqw-q1", "hcqw-q2"


def two_devices() -> list[Event]:
    """Three workflows on two QPUs; workflow a moves from q1 to q2. Times in seconds, makespan 0-6.

    q1: a/q1 holds 0-2 (exec 0.5-1.5), c/q1 holds 2.5-4 (exec 2.5-3.5; ready at 0, so it waited 2.5 s).
    q2: b/q1 holds 0-3 (exec 1-2.8), a/q2 holds 3-5 (exec 3.2-4.2; ready at 2.6, waited 0.4 s).
    a/q1 and b/q1 overlap in time, on different devices. cpu: a 2-2.6 and 5-5.5, b 3-4, c 4-6.
    """
    return [
        ev("ready", "a", "q1", 0), ev("ready", "b", "q1", 0), ev("ready", "c", "q1", 0),
        ev("hold", "a", "q1", 0, 2, Q1), ev("exec", "a", "q1", 0.5, 1.5, Q1), ev("cpu", "a", "c1", 2, 2.6),
        ev("ready", "a", "q2", 2.6), ev("hold", "a", "q2", 3, 5, Q2), ev("exec", "a", "q2", 3.2, 4.2, Q2),
        ev("cpu", "a", "c2", 5, 5.5),
        ev("hold", "b", "q1", 0, 3, Q2), ev("exec", "b", "q1", 1, 2.8, Q2), ev("cpu", "b", "c1", 3, 4),
        ev("hold", "c", "q1", 2.5, 4, Q1), ev("exec", "c", "q1", 2.5, 3.5, Q1), ev("cpu", "c", "c1", 4, 6),
    ]


def renamed(events: list[Event], hold: str | None = None, exec: str | None = None) -> list[Event]:
    """The events with every hold's (exec's) device renamed, as other loggers name them."""
    new = {"hold": hold, "exec": exec}
    return [replace(e, device=new[e.kind]) if new.get(e.kind) is not None else e for e in events]


# -- figures ----------------------------------------------------------------------------------------


def test_each_device_has_its_own_figures():
    s = summarize(two_devices())
    assert list(s.devices) == [Q1, Q2] and s.qpu_devices == 2
    q1, q2 = s.devices[Q1], s.devices[Q2]
    assert (q1.quantum_nodes, q1.workflows, q2.quantum_nodes, q2.workflows) == (2, 2, 2, 2)
    assert q1.qpu_busy == pytest.approx(2) and q1.qpu_busy_fraction == pytest.approx(2 / 6)
    assert q1.qpu_allocated == pytest.approx(3.5) and q1.qpu_allocated_idle == pytest.approx(1.5)
    assert q1.qpu_free == pytest.approx(2.5)
    assert (q1.idle_gaps, q1.longest_idle_gap) == (3, pytest.approx(2.5))  # 0-0.5, 1.5-2.5, 3.5-6
    assert (q1.wait_mean, q1.wait_max) == (pytest.approx(1.25), pytest.approx(2.5))
    assert q1.handovers_measured == 1 and q1.handover_median == pytest.approx(1.0)  # a/q1 1.5 -> c/q1 2.5
    assert q1.hold_per_workflow == pytest.approx({"a": 2, "c": 1.5})
    assert q2.qpu_busy == pytest.approx(2.8) and q2.qpu_allocated == pytest.approx(5)
    assert q2.qpu_allocated_idle == pytest.approx(2.2) and q2.qpu_free == pytest.approx(1)
    assert (q2.idle_gaps, q2.longest_idle_gap) == (3, pytest.approx(1.8))  # 0-1, 2.8-3.2, 4.2-6
    assert (q2.wait_mean, q2.wait_max) == (pytest.approx(0.2), pytest.approx(0.4))
    assert q2.handovers_measured == 1 and q2.handover_median == pytest.approx(0.4)  # b/q1 2.8 -> a/q2 3.2
    assert q2.hold_per_workflow == pytest.approx({"a": 2, "b": 3})


def test_run_totals_add_the_devices_and_their_fractions_are_of_the_capacity():
    s = summarize(two_devices())
    assert (s.workflows, s.quantum_nodes, s.classical_nodes, s.makespan) == (3, 4, 4, 6)
    assert s.qpu_busy == pytest.approx(4.8) and s.qpu_busy_fraction == pytest.approx(4.8 / 12)
    assert s.qpu_allocated == pytest.approx(8.5) and s.qpu_allocated_fraction == pytest.approx(8.5 / 12)
    assert s.qpu_allocated_idle == pytest.approx(3.7) and s.qpu_free == pytest.approx(12 - 8.5)
    assert (s.idle_gaps, s.longest_idle_gap) == (6, pytest.approx(2.5))
    assert s.wait_mean == pytest.approx((0 + 0.4 + 0 + 2.5) / 4) and s.wait_max == pytest.approx(2.5)
    assert s.handovers_measured == 2 and s.handover_median == pytest.approx(0.7)
    assert s.hold_per_workflow == pytest.approx({"a": 4, "b": 3, "c": 1.5})  # a: 2 s on q1 + 2 s on q2
    assert s.quantum_work == pytest.approx(4.8) and s.longest_workflow == pytest.approx(3.1)
    assert s.bound == pytest.approx(3.1)


def test_the_lower_bound_spreads_the_device_work_over_the_devices():
    # Two 2 s blocks at once on two devices: a perfect schedule. Counted as one device's work, the bound
    # (4 s) would exceed the makespan (2 s).
    events = [ev("hold", "a", "q1", 0, 2, Q1), ev("exec", "a", "q1", 0, 2, Q1),
              ev("hold", "b", "q1", 0, 2, Q2), ev("exec", "b", "q1", 0, 2, Q2)]
    s = summarize(events)
    assert s.bound == 2 and s.makespan_over_bound == 1
    assert s.qpu_busy_fraction == 1 and s.qpu_free == 0


def test_holds_of_different_devices_may_overlap_but_not_of_one():
    assert consistency_problems(two_devices()) == []
    one = renamed(two_devices(), hold=Q1, exec=Q1)
    problems = "\n".join(consistency_problems(one))
    assert f"device '{Q1}' held twice at once: a/q1 and b/q1" in problems
    assert f"device '{Q2}'" not in problems


def test_consistency_names_the_device_whose_busy_time_exceeds_its_holds():
    events = [ev("hold", "a", "q1", 0, 1, Q1), ev("exec", "a", "q1", 0, 1, Q1),
              ev("hold", "b", "q1", 0, 1, Q2), ev("exec", "b", "q1", 0, 1, Q2), ev("exec", "b", "q2", 1, 3, Q2)]
    problems = consistency_problems(events)
    assert f"device '{Q2}': QPU busy 3.000 s exceeds allocated 1.000 s" in problems
    assert not any(Q1 in p for p in problems)
    assert any(p.startswith("exec b/q2") for p in problems)  # it lies outside every hold of its node


def test_summarize_keeps_one_device_on_request():
    s = summarize(two_devices(), device=Q2)
    assert list(s.devices) == [Q2] and s.qpu_devices == 1
    assert s.quantum_nodes == 2 and s.qpu_busy == pytest.approx(2.8) and s.makespan == 6  # the run's makespan


# -- which device an event used -----------------------------------------------------------------------


def test_a_gateway_hold_belongs_to_the_device_its_execs_ran_on():
    """Today's SLURM logs: the lease holds 'gateway', the gateway's execs name the device."""
    events = renamed(two_devices(), hold="gateway")
    assert [e.device for e in resolve_devices(events)] == [e.device for e in two_devices()]
    assert summarize(events) == summarize(two_devices())
    assert consistency_problems(events) == []


def test_an_exec_inside_a_named_hold_ran_on_the_held_device():
    """Every qpu host's service may name its backend alike ('qsim'); the hold names the host."""
    events = renamed(two_devices(), exec="qsim")
    assert summarize(events) == summarize(two_devices())
    assert consistency_problems(events) == []


def test_a_generic_name_left_over_goes_to_the_only_device_or_stays_apart():
    # One device: a gateway hold that executed nothing is on it (the SLURM chain of one qpu host).
    one = [ev("hold", "a", "q1", 0, 1, "gateway"), ev("exec", "a", "q1", 0.2, 0.8, "qsim"),
           ev("hold", "a", "q2", 2, 3, "gateway")]
    assert {e.device for e in resolve_devices(one)} == {"qsim"}
    assert list(summarize(one).devices) == ["qsim"] and summarize(one).qpu_allocated == 2
    # Two devices: it could be either, so it is shown apart and not counted as a third device.
    several = two_devices() + [ev("hold", "d", "q1", 0, 1, "gateway")]
    s = summarize(several)
    assert list(s.devices) == ["gateway", Q1, Q2] and s.qpu_devices == 2
    assert s.qpu_busy_fraction == pytest.approx(4.8 / 12)
    assert consistency_problems(several) == []


def test_service_sessions_take_the_device_of_their_execs():
    """A client logs the service's address as a session's device; its items ran on the service's device."""
    events = [Event("session", "a", "q1", 0, 4, "tcp://10.0.0.1:5555"), ev("exec", "a", "q1", 1, 2, Q1),
              Event("session", "b", "q1", 0, 4, "tcp://10.0.0.2:5555"), ev("exec", "b", "q1", 1, 3, Q2),
              Event("session", "c", "q1", 0, 4, "tcp://10.0.0.2:5555")]  # opened, never executed
    assert [e.device for e in resolve_devices(events) if e.kind == "session"] == [Q1, Q2, ""]
    nodes = {n.workflow: n for n in quantum_nodes(resolve_devices(events))}
    assert (nodes["a"].device, nodes["b"].device) == (Q1, Q2) and nodes["c"].busy == 0
    s = summarize(events)
    assert list(s.devices) == [Q1, Q2] and s.quantum_nodes == 3  # the idle session is a node of no device
    assert s.devices[Q2].qpu_allocated == 2 and s.devices[Q2].qpu_allocated_idle == 0


# -- lanes and tables ---------------------------------------------------------------------------------


def test_one_lane_per_device_with_its_own_free_marks():
    panel = layout("two", two_devices())
    assert panel.lanes == [f"QPU {Q1}", f"QPU {Q2}", "a", "b", "c"] and panel.qpu_lanes == 2
    on_lane = lambda lane, style: sorted((b.start, b.end) for b in panel.bars if b.lane == lane and b.style == style)  # noqa: E731
    assert on_lane(0, "hold") == [(0, 2), (2.5, 4)] and on_lane(1, "hold") == [(0, 3), (3, 5)]
    assert on_lane(0, "exec") == [(0.5, 1.5), (2.5, 3.5)] and on_lane(1, "exec") == [(1, 2.8), (3.2, 4.2)]
    assert on_lane(0, "free") == [(2, 2.5), (4, 6)] and on_lane(1, "free") == [(5, 6)]
    # Workflow a's lane holds both of its blocks, each naming its device: the chain moved from q1 to q2.
    tips = [b.tooltip for b in panel.bars if b.lane == 2 and b.style == "hold"]
    assert tips[0].startswith(f"a/q1 hold on {Q1} ") and tips[1].startswith(f"a/q2 hold on {Q2} ")
    assert [b.label for b in panel.bars if b.lane == 2 and b.label] == [Q1, Q2]  # written on the holds
    assert f"QPU {Q2} free (idle)" in {b.tooltip.split(" 5.000")[0] for b in panel.bars}
    assert f"{Q1} 33%, {Q2} 47%" in panel.caption()


def test_one_device_keeps_the_single_qpu_lane():
    panel = layout("one", hand_made())
    assert panel.lanes == ["QPU", "a", "b"] and panel.qpu_lanes == 1
    assert all(" on " not in b.tooltip and not b.label for b in panel.bars)
    assert "QPU busy 38%," in panel.caption()


def test_the_table_has_a_row_group_per_device_and_dashes_where_a_run_lacks_it():
    summaries = {"two": summarize(two_devices()), "one": summarize(hand_made())}
    rows = dict(table_rows(summaries))
    assert rows["QPU devices"] == ["2", "1"]
    assert rows[f"device {Q1}"] == ["", ""] and "device qsim" in rows
    groups = [name for name, _ in table_rows(summaries) if name.startswith("device ")]
    assert groups == [f"device {Q1}", f"device {Q2}", "device qsim"]
    text = format_table(summaries)
    assert f"two: QPU holding per workflow on {Q2}: a 2.00 s, b 3.00 s" in text
    assert "one: QPU holding per workflow on" not in text and "devices x makespan" in text
    # Per device the rows repeat under their group: q1's busy seconds, then '-' for the run without q1.
    lines = text.splitlines()
    q1_busy = lines[lines.index(next(l for l in lines if l.startswith(f"device {Q1}"))) + 2]
    assert q1_busy.split()[:4] == ["QPU", "busy", "(exec)", "2.00"] and q1_busy.endswith("-")


def test_one_device_table_has_no_device_rows():
    text = format_table({"one": summarize(hand_made())})
    assert "QPU devices" not in text and "device " not in text and "devices x makespan" not in text


# -- the CLI on a two-device log ----------------------------------------------------------------------


def write_log(events: list[Event], path: Path) -> Path:
    log = MetricsLog(path)
    for e in events:
        log.record(e.kind, workflow=e.workflow, node=e.node, device=e.device, start=e.start, end=e.end)
    return path


def test_report_shows_every_device_and_keeps_one_on_request(tmp_path, capsys):
    log = write_log(renamed(two_devices(), hold="gateway"), tmp_path / "run" / "metrics" / "qpu.jsonl")
    assert hcqw_main(["report", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"device {Q1}" in out and f"device {Q2}" in out and "QPU devices" in out
    assert hcqw_main(["report", str(log), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["qpu.jsonl"]
    assert reported["qpu_devices"] == 2 and reported["devices"][Q2]["qpu_busy"] == pytest.approx(2.8)
    assert hcqw_main(["report", str(log), "--device", Q2, "--json"]) == 0
    only = json.loads(capsys.readouterr().out)["qpu.jsonl"]
    assert list(only["devices"]) == [Q2] and only["quantum_nodes"] == 2
    assert hcqw_main(["report", str(log), "--device", "gateway"]) == 2
    assert f"no hold or exec of device 'gateway'; its devices: '{Q1}', '{Q2}'" in capsys.readouterr().err


def test_timeline_draws_a_lane_per_device_in_png_and_html(tmp_path, capsys):
    write_log(two_devices(), tmp_path / "run" / "metrics" / "qpu.jsonl")
    assert hcqw_main(["timeline", str(tmp_path / "run"), "--out", str(tmp_path), "--name", "two",
                      "--format", "png,html"]) == 0
    assert f"device {Q2}" in capsys.readouterr().out
    png = tmp_path / "two.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    html = (tmp_path / "two.html").read_text()
    assert f">QPU {Q1}</text>" in html and f">QPU {Q2}</text>" in html
    assert f"a/q1 exec on {Q1}" in html and f"a/q2 exec on {Q2}" in html  # the chain's move, bar by bar
    assert html.count(f'pointer-events="none">{Q2}</text>') == 2  # on a's second hold and on b's
    assert f"QPU {Q1} free (idle)" in html and f"QPU {Q2} free (idle)" in html
    assert f'<th colspan="2" style="text-align:left">device {Q2}</th>' in html
    assert f"QPU holding per workflow on {Q1} (run)" in html


# -- a real run on two devices ------------------------------------------------------------------------


class TwoQpus:
    """Hands odd iterations' quantum nodes to one real device and even ones to the other, so every chain moves
    between them; a stand-in for SLURM's choice of qpu host."""

    def __init__(self, base: Path):
        self.devices = []
        for name in (Q1, Q2):
            backend = QsimBackend()
            backend.name = name  # a second real qsim, logged as a device of its own
            self.devices.append(LocalDevice(backend, directory=base / name))

    def acquire(self, workflow: str, node: str, *args, **kwargs):
        return self.devices[int(node[1:]) % 2 == 0].acquire(workflow, node, *args, **kwargs)


def test_a_real_split_run_on_two_devices(tmp_path, capsys):
    run_split(make_workflows(tmp_path / "runs", count=2, iterations=4), TwoQpus(tmp_path / "devices"))
    events = load_run(tmp_path / "runs")
    assert consistency_problems(events) == []
    s = summarize(events)
    assert list(s.devices) == [Q1, Q2] and s.qpu_devices == 2 and s.quantum_nodes == 8
    for device in s.devices.values():
        assert device.quantum_nodes == 4 and set(device.hold_per_workflow) == {"w0", "w1"}
        assert 0 < device.qpu_busy <= device.qpu_allocated <= s.makespan
    assert s.qpu_busy == pytest.approx(sum(d.qpu_busy for d in s.devices.values()))
    panel = layout("real", events)
    assert panel.lanes == [f"QPU {Q1}", f"QPU {Q2}", "w0", "w1"]
    assert {(b.lane, b.tooltip.split()[0]) for b in panel.bars if b.style == "exec" and b.lane < 2} == {
        (0, "w0/q0001"), (0, "w1/q0001"), (0, "w0/q0003"), (0, "w1/q0003"),
        (1, "w0/q0002"), (1, "w1/q0002"), (1, "w0/q0004"), (1, "w1/q0004")}
