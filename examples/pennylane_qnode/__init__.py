"""VQE for H2 as a PennyLane QNode on ``hcqw.qpu``: Adam steps on parameter-shift gradients."""
