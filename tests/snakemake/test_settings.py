"""The executor's ``--hcqw-*`` options as ``snakemake --help`` shows them."""

from __future__ import annotations

import subprocess

from smk_helpers import SNAKEMAKE


def test_help_lists_the_device_service_with_its_node_placeholder_and_no_gateway_address_options():
    shown = subprocess.run([SNAKEMAKE, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr  # argparse fails on a bare % in a help text
    text = " ".join(shown.stdout.split())
    assert "--hcqw-device-service" in text and "%n is replaced by the qpu node's name" in text
    # The gateway finds the qpu node's address itself: nothing to bind, nothing to allow.
    assert "--hcqw-gateway-bind" not in text and "--hcqw-allow-remote" not in text
