"""What tests share, imported one way: ``from tests.support.<module> import ...``.

- ``ROOT``: the repository's root.
- ``live``: a QPU service run as its own process (``LiveService``); ``munge``: a private munged;
  ``unix_users``: real Unix users for isolation tests.
- ``lab_user``: running commands as the lab's users and checking what they may read;
  ``lab_jobs``: jobs on the lab cluster and their records.
- ``loops``: small hybrid loops (Bell circuits) for the engines' tests; ``resident``: the
  resident QPU service fixture.
- ``snakemake_runs``, ``parsl_runs``: the real ``snakemake`` command line and Parsl scripts.
- ``rest_recorder``: a recording stand-in for slurmrestd, for the REST clients' unit tests.
- ``wire_types``: what the wire decoder accepts (the front door's allow-list), checked on a circuit's Cirq JSON.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
