"""A seeded service session samples exactly what a local lease with the same seed samples,
however other sessions' work interleaves with it: the property that lets a SLURM quantum node
(served by a gateway) reproduce the embedded run."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from hcqw.device import LocalDevice
from hcqw.service.client import ServiceClient

Q = cirq.LineQubit.range(3)
NOISY = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))  # uniform: every sample is random


def samples(lease, batches=3):
    return [lease.run(NOISY, 64)[0].measurements["m"] for _ in range(batches)]


def test_seeded_session_matches_a_local_lease_despite_interleaved_sessions(tcp_service, tmp_path):
    local = LocalDevice("qsim", directory=tmp_path / "dev", threads=1)
    with local.acquire("wf", "q0001", seed=1234) as lease:
        expected = samples(lease)
    with ServiceClient(tcp_service.address) as client, ServiceClient(tcp_service.address) as other:
        with client.session("wf", "q0001", seed=1234) as seeded, other.session("wf2", "q0001") as unseeded:
            got = []
            for _ in range(3):
                unseeded.run(NOISY, 64)  # consumes the device RNG between the seeded batches
                got.append(seeded.run(NOISY, 64)[0].measurements["m"])
    for want, have in zip(expected, got):
        np.testing.assert_array_equal(want, have)
    assert not np.array_equal(expected[0], expected[1])  # batches differ from each other


def test_bad_seed_is_refused(tcp_service):
    from hcqw.service.client import ServiceError

    with ServiceClient(tcp_service.address) as client:
        with pytest.raises(ServiceError, match="seed must be within"):
            client.session("wf", "q", seed=-1)


def test_seeded_monolithic_run_over_the_service_matches_the_local_device(tcp_service, tmp_path):
    """The monolithic form reseeds its one lease per iteration; over a service session that is a
    ``reseed`` request, and the run measures exactly what it measures on the local device."""
    from examples.vqe.pipeline import make_loop
    from hcqw.embedded import Workflow, run_monolithic
    from hcqw.service.device import ServiceDevice

    local = Workflow.create(make_loop(iterations=3, shots=200), tmp_path / "local")
    served = Workflow.create(make_loop(iterations=3, shots=200), tmp_path / "served")
    run_monolithic(local, LocalDevice("qsim", directory=tmp_path / "dev", threads=1))
    run_monolithic(served, ServiceDevice(tcp_service.address))
    want, have = local.final_state().energies, served.final_state().energies
    assert len(want) == 3 and have == want
    assert len(set(want)) == 3  # the iterations measured different things (no seed stuck at one value)
