"""A discrete-event model of hcqw on SLURM, calibrated on the lab's measured cells (issue 22, point 5).

``params`` (timings and workloads), ``sim`` (the simpy model), ``figures`` (the model's figures with
``hcqw.timeline.analysis``, as for a lab cell), ``calibration.json`` (the timings and the cells they
reproduce). Run ``python -m bench.model --help``.
"""
