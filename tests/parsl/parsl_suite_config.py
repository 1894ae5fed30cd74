"""Parsl's own test suite against hcqw_config()'s ``cpu`` executor (embedded).

    pytest --config tests/parsl/parsl_suite_config.py <parsl>/tests/...   (see run_parsl_suite.sh)

Only the ``cpu`` executor: Parsl's tests submit apps without ``executors=``, which would
spread them over ``cpu`` and ``qpu`` at random.
"""

from parsl.config import Config

from parsl_hcqw import hcqw_config


def fresh_config() -> Config:
    config = hcqw_config(cpu_workers=2)
    cpu = [e for e in config.executors if e.label == "cpu"]
    return Config(executors=cpu, run_dir=config.run_dir, strategy="none")
