"""PennyLane on hcqw: the ``hcqw.qpu`` device (``pip install 'hcqw[pennylane]'``).

::

    import pennylane as qml

    dev = qml.device("hcqw.qpu", wires=2, shots=1000, seed=7)

The only part of hcqw that imports PennyLane; see ``device.py`` for what one execution is, and
``convert.py`` for the gates a tape becomes.
"""

from hcqw.pennylane.device import HcqwDevice

__all__ = ["HcqwDevice"]
