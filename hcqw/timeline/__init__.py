"""QPU/CPU timelines of hybrid runs: figures (``analysis``), Gantt charts (``plot``, ``html``), reports.

The input is the QPU timeline log of ``hcqw.metrics`` (``hold`` and ``exec`` intervals),
optionally enriched with two more kinds that make the picture complete:

- ``ready``: the moment a node's inputs were available (``start`` only); the wait of a
  quantum node is ``hold.start - ready.start``;
- ``cpu``: a classical block (``start``/``end``), for CPU occupancy and the lower bound.

``hcqw.workflow.run_node`` logs both for hybrid loops on every engine; a step that opens the
device itself (``open_qpu``) logs neither. Everything here works without them, with less detail.

A run may use several devices: ``devices`` says which device each event used, and the figures
and charts have one set and one lane per device.

Only ``analysis``, ``devices`` and ``events`` are imported eagerly: all three are numpy- and
matplotlib-free, so ``hcqw report`` and the CLI parser stay light. The commands are
``hcqw.cli.timeline`` and ``hcqw.cli.report``.
"""

from hcqw.timeline.analysis import DeviceSummary, Summary, consistency_problems, summarize
from hcqw.timeline.devices import resolve_devices
from hcqw.timeline.events import Event, find_metrics, load_events

__all__ = ["DeviceSummary", "Event", "Summary", "consistency_problems", "find_metrics", "load_events",
           "resolve_devices", "summarize"]
