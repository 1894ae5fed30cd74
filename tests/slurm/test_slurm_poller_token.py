"""Status poller rate limiting and REST token hygiene (pure logic, fake query function)."""

from __future__ import annotations

import base64
import copy
import json
import logging
import pickle
import time
from pathlib import Path

import pytest

from hcqw.secret import Secret
from hcqw.slurm import ComponentSpec, JobRequest, RestAuthError, SlurmSettingsError
from hcqw.slurm.backend import resolve_output
from hcqw.slurm.rest import JwtSource, RestBackend, submit_payload
from hcqw.slurm.states import ComponentInfo, Phase
from hcqw.slurm.status import StatusPoller
from tests.support.rest_recorder import RestRecorder

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2VjcmV0LXNpZ25hdHVyZQ"


class FakeQuery:
    """Stands in for one sacct/scontrol call: records which leaders were asked for."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.states: dict[str, str] = {}

    def __call__(self, leaders):
        self.calls.append(list(leaders))
        return [ComponentInfo(job_id=j, leader_id=j, het_offset=None, state=self.states[j]) for j in leaders if j in self.states]


def test_one_query_covers_all_tracked_jobs_and_is_rate_limited():
    query = FakeQuery()
    query.states = {"1": "RUNNING", "2": "PENDING", "3": "RUNNING"}
    poller = StatusPoller(query, min_interval=0.3)
    for j in "123":
        poller.track(j)
    assert poller.status(["1"])["1"].phase is Phase.RUNNING
    assert query.calls == [["1", "2", "3"]]  # one call for every tracked job
    assert poller.status(["2"])["2"].phase is Phase.PENDING
    assert poller.status(["3", "1"])["3"].phase is Phase.RUNNING
    assert len(query.calls) == 1  # inside min_interval: served from cache
    time.sleep(0.35)
    query.states["1"] = "COMPLETED"
    assert poller.status(["1"])["1"].phase is Phase.COMPLETED
    assert len(query.calls) == 2
    time.sleep(0.35)
    poller.status(["1", "2"])
    assert query.calls[-1] == ["2", "3"]  # final jobs are never asked again
    assert poller.status(["1"], force=True)["1"].done and query.calls[-1] == ["2", "3"]


def test_component_ids_map_to_leader_and_unknown_jobs():
    query = FakeQuery()
    poller = StatusPoller(query, min_interval=0)
    result = poller.status(["42+1"])
    assert result["42+1"].phase is Phase.UNKNOWN and result["42+1"].leader_id == "42"


def test_purged_job_keeps_last_known_state():
    query = FakeQuery()
    query.states = {"5": "RUNNING"}
    poller = StatusPoller(query, min_interval=0)
    assert poller.status(["5"])["5"].phase is Phase.RUNNING
    del query.states["5"]
    assert poller.status(["5"])["5"].phase is Phase.RUNNING


def _jwt(exp: float) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": exp, "sun": "me"}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl"


def test_token_sources_and_masking(tmp_path):
    token_file = _private_file(tmp_path / "jwt", SECRET + "\n")
    assert JwtSource(token_file=token_file).get() == SECRET
    assert JwtSource(environ={"SLURM_JWT": "b", "HCQW_SLURM_JWT": "a"}).get() == "a"
    assert JwtSource(environ={"SLURM_JWT": "b"}).get() == "b"
    assert JwtSource(environ={}).get() is None
    src = JwtSource(token=SECRET)
    assert SECRET not in repr(src) and SECRET not in str(src)
    backend = RestBackend(url="http://127.0.0.1:1", token=SECRET)
    assert SECRET not in repr(backend) and "***" in repr(backend)
    with pytest.raises(RestAuthError) as info:
        JwtSource(token_file=tmp_path / "missing").get()
    assert "token file" in str(info.value)


def test_expiry_hint_never_contains_the_token():
    old = _jwt(time.time() - 100)
    hint = JwtSource(token=old).expiry_hint()
    assert "expired at" in hint and old not in hint
    assert "not expired" in JwtSource(token=_jwt(time.time() + 600)).expiry_hint()
    assert JwtSource(environ={}).expiry_hint() == "; no token was sent"


def test_rest_payload_hetjob_and_no_secrets(caplog):
    caplog.set_level(logging.DEBUG)
    req = JobRequest(
        workflow_id="wf", node="n", body="echo hi",
        components=(ComponentSpec("cpu", time_limit=5), ComponentSpec("qpu", gres="qpu:1", mem_mb=100)),
        workdir=Path("/tmp/w"), environment={"FOO": "bar"}, dependencies=("7",),
    )
    payload = submit_payload(req)
    cpu, qpu = payload["jobs"]
    assert cpu["partition"] == "cpu" and qpu["partition"] == "qpu" and qpu["gres"] == "qpu:1"
    assert cpu["dependency"] == "afterok:7" and cpu["kill_on_invalid_dependency"] is True
    for part in (cpu, qpu):
        assert part["current_working_directory"] == "/tmp/w" and part["environment"]["FOO"] == "bar"
        assert "PATH" in part["environment"] and "SLURM_JWT" not in part["environment"]
    assert cpu["time_limit"] == 5 and qpu["memory_per_node"] == 100 and cpu["nodes"] == [1, 1]
    assert "job" not in payload and payload["script"].startswith("#!/bin/bash")


def test_resolve_output():
    assert resolve_output("out-%j-%x.txt", Path("/w"), "12", "name") == "/w/out-12-name.txt"
    assert resolve_output("/abs/100%%-%j", Path("/w"), "3", "n") == "/abs/100%-3"


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660], ids=lambda m: f"{m:04o}")
def test_token_file_others_can_read_is_refused_with_the_fix(tmp_path, mode):
    token_file = _private_file(tmp_path / "jwt", SECRET)
    token_file.chmod(mode)
    with pytest.raises(SlurmSettingsError) as info:
        JwtSource(token_file=token_file).get()
    assert f"chmod 600 {token_file}" in str(info.value) and f"{mode:04o}" in str(info.value)
    assert SECRET not in str(info.value)
    token_file.chmod(0o600)
    assert JwtSource(token_file=token_file).get() == SECRET


def test_a_token_in_a_secret_never_shows_nor_pickles():
    secret = Secret(SECRET)
    backend = RestBackend(url="http://127.0.0.1:1", token=secret)
    for text in (repr(secret), str(secret), f"{secret}", repr({"token": secret}), repr(backend)):
        assert SECRET not in text
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps({"token": secret})
    assert copy.deepcopy({"token": secret})["token"] is secret
    assert JwtSource(token=secret).get() == SECRET == secret.reveal()


@pytest.mark.parametrize("url", ["http://10.11.12.13:6820", "http://rest.example.org", "http://[2001:db8::1]:6820"])
def test_plain_http_to_another_host_is_refused_unless_allowed(url, monkeypatch):
    monkeypatch.delenv("HCQW_SLURM_REST_ALLOW_HTTP", raising=False)
    with pytest.raises(SlurmSettingsError, match="plain http to another host") as info:
        RestBackend(url=url, token=SECRET)
    assert "allow_http=True" in str(info.value) and SECRET not in str(info.value)
    assert RestBackend(url=url, token=SECRET, allow_http=True).url == url
    monkeypatch.setenv("HCQW_SLURM_REST_ALLOW_HTTP", "1")
    assert RestBackend(url=url, token=SECRET).url == url
    https = url.replace("http://", "https://")
    monkeypatch.delenv("HCQW_SLURM_REST_ALLOW_HTTP")
    assert RestBackend(url=https, token=SECRET).url == https


@pytest.mark.parametrize("url", ["http://127.0.0.1:6820", "http://127.3.4.5:1", "http://localhost:6820/", "http://[::1]:8"])
def test_plain_http_to_loopback_is_fine(url):
    assert RestBackend(url=url, token=SECRET).url == url.rstrip("/")


def test_bad_url_is_refused():
    with pytest.raises(SlurmSettingsError, match="must look like"):
        RestBackend(url="127.0.0.1:6820", token=SECRET)


def test_a_redirect_is_not_followed_so_the_token_stays_with_the_first_server(tmp_path):
    with RestRecorder() as elsewhere, RestRecorder(redirect_to=elsewhere.url) as redirecting:
        backend = RestBackend(url=redirecting.url, token_file=_private_file(tmp_path / "jwt", SECRET), poll_interval=0)
        with pytest.raises(SlurmSettingsError, match="redirect") as info:
            backend.status(["1"], force=True)
        assert elsewhere.url in str(info.value) and SECRET not in str(info.value)
        assert redirecting.tokens() == [SECRET]  # the token went where it was meant to
        assert elsewhere.seen == []  # and nowhere else
        RestBackend(url=elsewhere.url, token=SECRET, poll_interval=0).status(["1"], force=True)
        assert elsewhere.tokens() == [SECRET]  # the server itself works: only the redirect was refused
