"""VQE for the H2 molecule: a hybrid loop of sampled energy gradients and Adam steps."""
