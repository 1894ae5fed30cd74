"""QAOA for MaxCut on a small graph, optimised by a compass search over sampled cut values."""
