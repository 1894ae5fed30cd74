"""What the wire decoder accepts (FRONTDOOR.md's allow-list), checked on a circuit's Cirq JSON."""

from __future__ import annotations

import json

WIRE_TYPES = frozenset({
    "Circuit", "Moment", "FrozenCircuit", "CircuitOperation", "GateOperation", "ControlledOperation",
    "ControlledGate", "ProductOfSums",  # ProductOfSums: how every ControlledGate encodes its control values
    "LineQubit", "GridQubit", "NamedQubit",
    "XPowGate", "YPowGate", "ZPowGate", "HPowGate", "CZPowGate", "CXPowGate", "SwapPowGate", "ISwapPowGate",
    "PhasedISwapPowGate", "PhasedXPowGate", "PhasedXZGate", "Rx", "Ry", "Rz", "XXPowGate", "YYPowGate", "ZZPowGate",
    "CCZPowGate", "CCXPowGate", "CSwapGate", "FSimGate", "IdentityGate", "GlobalPhaseGate", "MatrixGate",
    "MeasurementGate", "ResetChannel",
    "sympy.Symbol", "sympy.Integer", "sympy.Float", "sympy.Rational", "sympy.pi", "sympy.Add", "sympy.Mul", "sympy.Pow",
})


def _has_symbol(node) -> bool:
    if isinstance(node, dict):
        return node.get("cirq_type") == "sympy.Symbol" or any(_has_symbol(v) for v in node.values())
    return isinstance(node, list) and any(_has_symbol(v) for v in node)


def wire_type_faults(circuit) -> list[str]:
    """What in ``circuit``'s Cirq JSON the wire decoder would refuse (empty: nothing)."""
    import cirq

    faults: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            kind = node.get("cirq_type")
            if kind is not None and kind not in WIRE_TYPES:
                faults.append(kind)
            if kind == "MeasurementGate" and node.get("confusion_map"):
                faults.append("MeasurementGate.confusion_map")
            if kind == "sympy.Pow":
                base, exponent = node["args"]
                if not (exponent.get("cirq_type") == "sympy.Integer" and abs(exponent["i"]) <= 16 and _has_symbol(base)):
                    faults.append(f"sympy.Pow {json.dumps(node)[:80]}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(cirq.to_json(circuit)))
    return faults
