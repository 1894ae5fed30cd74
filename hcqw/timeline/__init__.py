"""QPU/CPU timelines of hybrid runs: figures (``analysis``), Gantt charts (``plot``, ``html``), CLI.

The input is the QPU timeline log of ``hcqw.metrics`` (``hold`` and ``exec`` intervals),
optionally enriched with two more kinds that make the picture complete:

- ``ready``: the moment a node's inputs were available (``start`` only); the wait of a
  quantum node is ``hold.start - ready.start``;
- ``cpu``: a classical block (``start``/``end``), for CPU occupancy and the lower bound.

The core does not log ``ready``/``cpu`` yet; ``bench/coschedule.py`` records them from
its own loop wrappers. Everything here works without them, with less detail.

Only ``analysis`` and ``events`` are imported eagerly: both are numpy- and matplotlib-free,
so ``hcqw report`` and the CLI parser stay light.
"""

from hcqw.timeline.analysis import Summary, consistency_problems, summarize
from hcqw.timeline.events import Event, find_metrics, load_events

__all__ = ["Event", "Summary", "consistency_problems", "find_metrics", "load_events", "summarize"]
