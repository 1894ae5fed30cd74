"""The VQE and QAOA examples written with Parsl ``@python_app``s on ``hcqw_config()``."""
