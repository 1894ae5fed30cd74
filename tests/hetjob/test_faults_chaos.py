"""A small seeded chaos run (bench/chaos.py) on the multi-host lab: deaths of a quantum node's peers.

Three faults drawn with a fixed seed from the deaths that take a quantum node's peer away mid-block
(its gateway, the resident QPU service of its qpu host, the slurmd of that host, the srun step
launcher) in one-iteration VQE chains whose gateways relay to the lab's resident services. What users
rely on, per fault: the qpu node is free within 15 s of the death, no checkpoint fails verification,
and the chain, re-run where it failed, ends with the energies of an undisturbed run.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.slurm
FREED_WITHIN_S = 15.0


def _chaos():
    spec = importlib.util.spec_from_file_location("chaos", ROOT / "bench" / "chaos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_seeded_peer_deaths_free_the_qpu_keep_checkpoints_and_end_with_the_undisturbed_energies(
        slurm_lab, job_env, tmp_path):
    chaos = _chaos()
    args = chaos.parse_args(["--lab-dir", str(slurm_lab.root), "--lab-services", "--faults", "3", "--seed", "4",
                             "--iterations", "1", "--shots", "20000", "--kinds", "gateway,resident,slurmd,srun",
                             "--out", str(tmp_path)])
    outcomes = chaos.run(args)

    assert len(outcomes) == 3
    for outcome in outcomes:
        assert outcome.held_after_s is not None, outcome  # every fault here is a death of the node's peer
        assert outcome.held_after_s <= FREED_WITHIN_S, outcome
        assert outcome.corrupt == 0, outcome
        assert outcome.same_energies, outcome
