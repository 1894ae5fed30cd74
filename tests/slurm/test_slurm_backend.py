"""Where jobs run: ``hcqw.slurm.BACKENDS`` and ``check_backend``, the one check behind Parsl's
``hcqw_config(backend=...)``, Snakemake's ``--hcqw-backend`` and ``hcqw slurm run --backend``
(pure logic; the adapters' own tests run it through their real entry points)."""

from __future__ import annotations

import pytest

from hcqw.slurm import BACKENDS, SlurmSettingsError, check_backend, open_backend
from hcqw.slurm.rest import RestBackend
from hcqw.slurm.sbatch import SbatchBackend

URL = "http://127.0.0.1:6820"


def listed(message: str, choices=BACKENDS) -> bool:
    return all(f"'{choice}'" in message for choice in choices)


@pytest.mark.parametrize(("backend", "options"), [("local", {}), ("slurm", {"env": {"SLURM_CONF": "/x"}}),
                                                  ("rest", {"url": URL, "token_file": "/t"})])
def test_each_backend_is_accepted_with_its_own_options(backend, options):
    assert check_backend(backend, options) == backend


@pytest.mark.parametrize("backend", ["sbatch", "embedded", "SLURM", ""])
def test_an_unknown_backend_is_refused_with_every_valid_choice(backend):
    with pytest.raises(SlurmSettingsError) as err:
        check_backend(backend)
    assert f"unknown backend {backend!r}" in str(err.value) and listed(str(err.value))


@pytest.mark.parametrize(("backend", "options", "named"), [
    ("local", {"url": URL}, "url"),                       # a REST URL means nothing on this machine
    ("local", {"env": {"SLURM_CONF": "/x"}}, "env"),      # nor do SLURM's
    ("slurm", {"token": "secret-value"}, "token"),        # a token only goes to slurmrestd
    ("slurm", {"url": URL, "token_file": "/t"}, "token_file"),
    ("rest", {"token_file": "/t"}, "url"),                # slurmrestd needs its URL
])
def test_options_that_mean_nothing_there_are_refused_by_name(backend, options, named):
    with pytest.raises(SlurmSettingsError, match=named) as err:
        check_backend(backend, options)
    assert "secret-value" not in str(err.value)  # the option is named, its value never shown


def test_unset_options_are_no_combination():
    assert check_backend("local", {"url": None, "token_file": None, "allow_http": False}) == "local"


def test_messages_spell_options_as_the_caller_does():
    with pytest.raises(SlurmSettingsError, match="set --rest-url"):
        check_backend("rest", {"url": None}, names={"url": "--rest-url"})


def test_where_only_slurm_applies_local_is_refused_with_the_slurm_choices():
    with pytest.raises(SlurmSettingsError) as err:
        check_backend("local", local=False)
    assert "runs jobs on this machine" in str(err.value) and listed(str(err.value), ("slurm", "rest"))
    with pytest.raises(SlurmSettingsError):
        open_backend("local")


def test_open_backend_opens_each_slurm_backend_by_its_name():
    assert isinstance(sbatch := open_backend("slurm", env={"SLURM_CONF": "/nonexistent"}), SbatchBackend)
    assert isinstance(rest := open_backend("rest", url=URL), RestBackend)
    assert (sbatch.name, rest.name) == ("slurm", "rest")  # the names logs and runners show
