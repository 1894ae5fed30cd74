"""What the service's wire decoder makes of a circuit a front door built, checked with the decoder itself."""

from __future__ import annotations

from hcqw.codec import circuit_to_json, decode_circuit
from hcqw.errors import CircuitError


def wire_type_faults(circuit) -> list[str]:
    """Why the wire decoder (``hcqw.codec.circuit``) would refuse ``circuit``, or not give it back
    equal; empty if it crosses the wire unchanged."""
    try:
        decoded = decode_circuit(circuit_to_json(circuit)).circuit
    except CircuitError as err:
        return [str(err)]
    return [] if decoded == circuit else [f"decodes to a different circuit: {decoded!r}"]
