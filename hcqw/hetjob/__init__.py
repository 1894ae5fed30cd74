"""Quantum nodes on SLURM: the hetjob runtime and split job chains.

- ``gateway``: component 1 of a quantum node's hetjob. The QPU service run for one node;
  it alone talks to the device, exits when its one client is gone (heartbeat/idle timeout)
  and releases its own component on exit.
- ``address``: the qpu node's cluster address the gateway binds, found at run time, and ``%n``
  in a per-host service address.
- ``device``: component 0's device provider (``GatewayDevice``, built from the job's environment by
  ``gateway_device``): a service session whose close ends the quantum block, stops the gateway
  and cancels the qpu component at once.
- ``runtime``: ``python -m hcqw.hetjob.runtime``, running one workflow node inside a job.
- ``jobs``: ``command_request``, any command as a cpu job or as a qpu-releasing hetjob (the
  engines' adapters submit through it), and ``node_request`` for a workflow node.
- ``chain``: ``submit_chain``/``follow_chain``/``run_chain``, the first paper's listing 4 as
  ``afterok``-chained jobs (split, or fused: one hetjob per iteration) that resume from the last
  good checkpoint; ``ChainFailed``.
- ``federation``: a quantum node on the QPU-side cluster through its slurmrestd, with its
  checkpoints staged in and out.
- ``percall``: per-call holding for an unsplit driver (``HCQW_DEVICE=per-call``): each ``open_qpu`` lease a
  qpu-only job running the relay gateway, cancelled when the lease closes; ``driver_request``, the driver as a
  cpu job (``hcqw slurm submit``).
- ``replay``: a per-call driver's finished calls as signed records, replayed by a re-run of the same workflow.
- ``records``: hold intervals from the metrics log next to SLURM's own component records.

Its commands, ``hcqw slurm run`` and ``hcqw slurm submit``, are ``hcqw.cli.slurm``.
"""
