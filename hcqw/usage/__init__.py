"""``hcqw usage``: quantum-seconds per user, account and workflow -- charged beside worked.

Two figures per row, over a period:

- **charged**: device-seconds allocated to the row. On SLURM (``sacct`` answers) that is
  SLURM's own charge: for every job component holding ``gres/qpu`` (the qpu component of a
  quantum node's hetjob, or any other job on the qpu partition), its elapsed time x the
  ``gres/qpu`` count in ``AllocTRES``. Without SLURM (the embedded default) it is the device's
  ``hold`` intervals from the metrics logs: the time a node held the machine's device
  exclusively, which is exactly what a qpu component charges on SLURM.
- **busy**: seconds the device executed work for the row, from ``exec`` events in the logs
  given (a run's ``metrics/qpu.jsonl`` and ``metrics/gateway.jsonl``, a QPU service's log).

and their ratio busy/charged: how much of what was charged the device actually worked.

Who and what a charge belongs to: SLURM's ``User`` and ``Account``; the workflow from the job
name hcqw gives every job, ``hcqw:<workflow>:<node>`` (other jobs have no workflow). An exec
event belongs to the charge of the same workflow node whose interval contains it, and takes
that charge's user and account (SLURM's, not what a client may have claimed); an exec no
charge covers keeps the user its log records. Intervals are cut to the period, as ``sreport``
does; a job still running is charged up to now.

Modules: ``period`` (``--since``/``--until``), ``records`` (charge and busy intervals),
``sacct`` (charges from SLURM accounting), ``logs`` (holds and execs from metrics logs),
``table`` (the aggregation, pure), ``collect`` (picks the charge source, builds the table),
``report`` (table, JSON, CSV). Its command, ``hcqw usage``, is ``hcqw.cli.usage``.
"""
