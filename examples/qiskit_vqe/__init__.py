"""VQE for H2 as Qiskit users write it: EstimatorV2 (hcqw's) inside scipy.optimize.minimize (COBYLA)."""
