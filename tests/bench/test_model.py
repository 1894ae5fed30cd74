"""The model of hcqw on SLURM (bench/model) reproduces the lab cells it was calibrated on.

Pure and fast: simpy, no lab. The tolerances are the calibration file's (stated with the cells);
a cell's hand-over p95 is checked where the cell ran unpinned (pinned cells' tails come from one
shared classical core, which the model's processor sharing does not reproduce).
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("simpy")

from bench.model.__main__ import check  # noqa: E402
from bench.model.params import Calibration, Timings, Workload  # noqa: E402
from bench.model.figures import GOALS, SEEDS, figures, repeatability, run  # noqa: E402
from bench.model.measured import measure  # noqa: E402
from bench.model.sensitivity import sensitivity  # noqa: E402
from bench.model.sim import simulate  # noqa: E402
from hcqw.timeline.analysis import consistency_problems, summarize  # noqa: E402

CAL = Calibration.load()
ROWS = {row["name"]: row for row in check(CAL, seeds=SEEDS)}  # as `python -m bench.model check` prints


@pytest.mark.parametrize("name", sorted(ROWS))
def test_calibration_cell_within_tolerance(name):
    row, tol = ROWS[name], CAL.tolerances
    cell = next(c for c in CAL.cells if c["name"] == name)
    assert abs(row["makespan_err"]) <= tol["makespan_rel"], row
    assert abs(row["busy_err"]) <= tol["busy_abs"], row
    if row["p95_err"] is not None and cell["timings"].get("classical_cores", 2) >= 2:
        assert abs(row["p95_err"]) <= tol["handover_p95_abs"], row


def test_every_mode_has_a_calibration_cell_and_the_sources_are_named():
    modes = {c["workload"]["mode"] for c in CAL.cells}
    assert {"monolithic", "split-resident", "staged", "staged-fused"} <= modes
    assert all(c["source"].startswith("BENCHMARKS.md") for c in CAL.cells)


@pytest.mark.parametrize("mode", ["monolithic", "split-resident", "fused", "staged", "staged-fused"])
def test_model_runs_are_consistent_and_complete(mode):
    """Never two holders of a device's slot at once, every node executed, staged sessions one at a time."""
    w = Workload(k=5, n=3, q=1.0, c=0.5, mode=mode, qpus=2, load=2.0)
    out = simulate(CAL.timings, w)
    execs = [e for e in out.events if e.kind == "exec"]
    assert len(execs) == w.k * w.n
    assert consistency_problems(out.events) == []
    for device in {e.device for e in execs}:
        spans = sorted((e.start, e.end) for e in execs if e.device == device)
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(spans, spans[1:])), f"two batches at once on {device}"


def test_staging_hides_the_hand_over_and_split_pays_a_tick():
    """The mechanism, not a number: unstaged nodes wait for a backfill tick and their start-up,
    staged ones are started while the device works."""
    t = Timings()
    split = run(t, Workload(k=4, n=4, q=5.0, c=1.0, mode="split-resident"), seeds=3)
    staged = run(t, Workload(k=4, n=4, q=5.0, c=1.0, mode="staged"), seeds=3)
    assert split["handover_median"] >= t.tick_period - 0.1
    assert staged["handover_median"] < 0.2
    assert staged["makespan"] < split["makespan"]


def test_bounded_window_keeps_fewer_records_than_whole_chains():
    t = Timings()
    whole = simulate(t, Workload(k=20, n=10, q=1.0, c=1.0, mode="staged", qpus=2))
    window = simulate(t, Workload(k=20, n=10, q=1.0, c=1.0, mode="staged", qpus=2, window=2, init_job=False))
    assert window.peak_records() < whole.peak_records()
    assert sum(window.jobs.values()) == 20 * 20 and sum(whole.jobs.values()) == 20 * 21
    assert summarize(window.events).quantum_nodes == summarize(whole.events).quantum_nodes


def test_bad_workload_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        Workload(k=1, n=1, q=1.0, c=1.0, mode="stagd")
    with pytest.raises(ValueError, match="depth"):
        Workload(k=1, n=1, q=1.0, c=1.0, mode="staged", depth=1)
    with pytest.raises(ValueError, match="steady share must be between 0 and 1"):
        Timings.from_dict({"node_startup": {"base": 0.25, "per_load": 0.15, "steady": 1.5}})


def test_a_lab_cells_repetitions_are_measured_as_the_model_counts_them(tmp_path):
    """bench.model.measured reads coschedule's layout; on model runs written that way it gives the model's own figures."""
    w = Workload(k=4, n=3, q=1.0, c=0.5, mode="staged", qpus=2, load=1.0)
    outcomes = [simulate(CAL.timings, w.with_(seed=s)) for s in (1, 2)]
    for rep, out in enumerate(outcomes):
        view = tmp_path / "2-1" / "k4" / "staged" / f"rep{rep}" / "slurm-view.jsonl"
        view.parent.mkdir(parents=True)
        view.write_text("".join(json.dumps({"kind": e.kind, "workflow": e.workflow, "node": e.node, "start": e.start,
                                            "end": e.end, "device": e.device}) + "\n" for e in out.events))
    got = measure(tmp_path)["staged"]
    want = [figures(out) for out in outcomes]
    assert [r["makespan"] for r in got["reps"]] == pytest.approx([f.makespan for f in want])
    assert [r["handover_p95"] for r in got["reps"]] == pytest.approx([f.handover_p95 for f in want])
    assert got["mean"]["busy"] == pytest.approx((want[0].busy + want[1].busy) / 2)
    assert all(r["problems"] == 0 for r in got["reps"])


def test_repeatability_says_how_far_a_cells_mean_lands_from_the_models_median():
    """Drawing every run as the repetitions gives one mean, so one error and shares of 0 or 1; a cell of more
    repetitions lands within the goals at least as often as a single run."""
    w = Workload(k=4, n=3, q=1.0, c=1.0, mode="split-resident", qpus=1, load=2.0, init_job=False)
    runs = [figures(simulate(CAL.timings, w.with_(seed=s))) for s in range(12)]
    predicted = run(CAL.timings, w, seeds=12)
    everything = repeatability(runs, predicted, reps=12, goals=GOALS, draws=20)
    for low, high in everything["error_range"].values():
        assert low == pytest.approx(high)
    assert all(share in (0.0, 1.0) for share in everything["within"].values())
    one = repeatability(runs, predicted, reps=1, goals=GOALS)
    five = repeatability(runs, predicted, reps=5, goals=GOALS)
    assert five["all_within"] >= one["all_within"]
    assert five["error_range"]["handover_p95_abs"][1] - five["error_range"]["handover_p95_abs"][0] < \
        one["error_range"]["handover_p95_abs"][1] - one["error_range"]["handover_p95_abs"][0]
    assert run(CAL.timings, w, seeds=12, reps=3)["repeatability"]["reps"] == 3


def test_sensitivity_says_which_hand_over_p95_hinges_on_the_runs_start_up_level():
    """A split node ends its 3.01 s block (sixth blind cell) near a backfill tick: a slower start-up moves its
    end past the tick and the next node waits a whole second more. With a 3.60 s block (seventh blind cell) its
    end lies mid-tick for every level the lab showed, and a staged hand-over waits for no tick at all."""
    cell6 = Workload(k=8, n=5, q=3.0, c=1.0, qpus=2, exec_time=3.01, init_job=False, mode="split-resident")
    near = sensitivity(CAL.timings, cell6, seeds=9, rpc_per=CAL.rpc_per)["figures"]["handover_p95"]
    assert not near["determinate"] and near["spread"] > 0.5, near
    mid = sensitivity(CAL.timings, cell6.with_(q=3.6, exec_time=3.6, c=0.135), seeds=9)["figures"]["handover_p95"]
    assert mid["determinate"], mid
    staged = sensitivity(CAL.timings, cell6.with_(mode="staged"), seeds=9)
    assert staged["determinate"] and staged["states"] == 6, staged
