"""A user's session on a QPU service, driven over stdin, for the access tests (run as a lab user).

    python open_session.py ADDRESS [TIMEOUT]  prints what the open got, then per line "run": what the run got
                                        ("big": a run beyond the default limit of shots per item); "quit" closes the session and ends. Each line is JSON: {"code": "ok" or the error code,
                                        "message": ..., "samples": [...] (a run's)}.
"""

from __future__ import annotations

import json
import sys

from hcqw.device.work import WorkItem
from hcqw.errors import DeviceError
from hcqw.service.client import ServiceClient, ServiceError
from hcqw.service.limits import WorkLimits
from victim import NOISY  # this directory: the script runs from the site's copy of tests/service

# 1000 repetitions at enough sweep points to pass the service's default --max-item-shots (and no device limit).
BEYOND_ITEM_SHOTS = WorkItem(NOISY, 1000, ({},) * (WorkLimits().item_shots // 1000 + 1))


def report(action) -> dict:
    try:
        return {"code": "ok", **(action() or {})}
    except ServiceError as err:
        return {"code": err.code, "message": str(err)}
    except DeviceError as err:  # no answer: e.g. a server that does not hold the key the address names
        return {"code": "unreachable", "message": str(err)}


def main(address: str) -> None:
    with ServiceClient(address, timeout=float(sys.argv[2]) if len(sys.argv) > 2 else 30) as client:
        opened: list = []
        print(json.dumps(report(lambda: opened.append(client.session("access-wf", "n", seed=7)))), flush=True)
        for line in sys.stdin:
            if line.strip() == "quit" or not opened:
                break
            item = BEYOND_ITEM_SHOTS if line.strip() == "big" else WorkItem(NOISY, 16)
            got = report(lambda: {"samples": opened[0].run_batch([item])[0][0]["m"].tolist()})
            print(json.dumps(got), flush=True)
        if opened:  # answered before we exit, so the service's count of open sessions is settled when we are gone
            opened[0].close()


if __name__ == "__main__":
    main(sys.argv[1])
