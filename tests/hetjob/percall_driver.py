"""An unsplit driver as users write them: quantum calls (``open_qpu``) separated by classical work.

``python percall_driver.py OUT CALLS SLEEP [HOLD]``: ``CALLS`` calls of a seeded GHZ circuit, ``SLEEP`` s of
classical work between them (and ``HOLD`` s inside each call after its result, default 0); one JSON line per call in ``OUT`` with the driver's own clock around it
(before the lease, lease open, first result, lease closed) and its samples. Nothing in it knows how
the device is held: the launch decides (``hcqw slurm submit``, or ``HCQW_DEVICE=per-call`` in a job).
"""

import json
import os
import signal
import sys
import time

import cirq

from hcqw.qpu import open_qpu

out, calls, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
hold = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
qubits = cirq.LineQubit.range(3)
ghz = cirq.Circuit(cirq.H(qubits[0]), cirq.CNOT(qubits[0], qubits[1]), cirq.CNOT(qubits[1], qubits[2]),
                   cirq.measure(*qubits, key="m"))
for call in range(calls):
    if call:
        time.sleep(pause)  # the classical part: nothing may hold the qpu now
    begin = time.time()
    with open_qpu(seed=100 + call) as qpu:
        acquired = time.time()
        samples = qpu.run(ghz, 32)[0].measurements["m"].dot([4, 2, 1]).tolist()
        result = time.time()
        if hold:
            print("in call", flush=True)
            time.sleep(hold)
    with open(out, "a") as lines:
        lines.write(json.dumps({"call": call, "begin": begin, "acquired": acquired, "result": result,
                                "closed": time.time(), "samples": samples}) + "\n")
    if os.environ.get("PERCALL_DRIVER_DIE_AFTER") == str(call + 1):  # the tests' kill at a call boundary
        os.kill(os.getpid(), signal.SIGKILL)
