"""What the attack suites expect of ``attacker.py``'s results (one copy for the one-host and the lab suite)."""

from __future__ import annotations

from collections.abc import Iterable

from hcqw.service import protocol as P
from tests.service.attacker import CONTROL, ID_FORMS


def assert_control_refused(got: dict[str, str], through_relay: bool) -> None:
    """Every control request in every form was refused by name: through a relay by the relay itself
    (``forbidden``, whatever the id or credential); directly, ``forbidden`` with the attacker's own
    credential and ``unauthenticated`` with none, a forged or a replayed one."""
    assert len(got) == len(CONTROL) * (len(ID_FORMS) + 3), sorted(got)
    for name, code in got.items():
        expected = P.E_FORBIDDEN if through_relay or name.endswith("own-cred") else P.E_UNAUTHENTICATED
        assert code == expected, (name, code)


def assert_status_hides(got: dict, secrets: Iterable[str]) -> None:
    """``status`` was refused or showed counts and positions only: no session id, workflow, node or user of the victim."""
    assert got["status_operator_view"] in (False, None), got["status_text"]
    for secret in secrets:
        assert secret not in got["status_text"], secret
