"""Backend that talks to slurmrestd (OpenAPI v0.0.38) with a JWT, over stdlib ``urllib``.

Used for the SLURM cluster co-located with the QPU, where we have no login
shell. The token is read fresh for every request (so a rotated token file
just works), sent only in the ``X-SLURM-USER-TOKEN`` header, and kept out of
everything else: logs, exception messages, reprs (a ``Secret``), pickles, job
scripts and job environments (an exported SLURM_JWT also breaks srun inside
the job). A token file others can read is refused; the token goes over plain
``http://`` only to a loopback host unless ``allow_http`` says otherwise, and
never follows a redirect.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hcqw import environment
from hcqw.identity import current_user
from hcqw.secret import Secret, hide
from hcqw.slurm.backend import OUTAGE_BOUND_S, BaseBackend, release_refused, ride_out
from hcqw.slurm.commands import never_sent
from hcqw.slurm.errors import (
    ControllerUnreachable,
    InvalidGres,
    RestAuthError,
    RestServerError,
    SlurmError,
    SlurmSettingsError,
    SubmitError,
    UnknownPartition,
)
from hcqw.slurm.parsing import component_from_rest
from hcqw.slurm.script import render_script
from hcqw.slurm.settings import ComponentSpec, JobRequest
from hcqw.slurm.states import ComponentInfo
from hcqw.slurm.status import StatusPoller, leader_of

log = logging.getLogger(__name__)

API = "/slurm/v0.0.38"
#: Environment variables searched for the token, in order.
TOKEN_ENV_VARS = (environment.SLURM_JWT, "SLURM_JWT")
#: Set to 1 to let the token go over plain http to a host that is not loopback (default of ``allow_http``).
ALLOW_HTTP_ENV = environment.SLURM_REST_ALLOW_HTTP
#: PATH for REST jobs that do not set one: slurmrestd passes no environment of its own.
DEFAULT_JOB_PATH = "/usr/local/bin:/usr/bin:/bin"

# slurmrestd 22.05 reports most failures as HTTP 500 with an error text.
# Measured: an expired or foreign token makes slurmctld drop the connection,
# which slurmrestd reports as "Zero Bytes were transmitted or received"
# (submit) or error -1 "Unspecified error" (queries), never as 401; only a
# missing token gets a 401. A controller that is down answers submissions
# with "Unable to contact slurm controller", but queries with the same
# "Unspecified error" as a bad token -- after slurmrestd's own connect
# retries (~9 s with MessageTimeout=10), whereas a refused token fails at once.
_UNREACHABLE_MARKERS = ("unable to contact slurm controller", "connection refused", "socket timed out")
_AUTH_MARKERS = ("authentication", "zero bytes were transmitted")
_AMBIGUOUS_MARKER = "unspecified error"
#: An ambiguous failure slower than this was slurmrestd retrying a dead controller.
RETRYING_CONTROLLER_S = 3.0


class JwtSource:
    """Where the JWT comes from; never shows the token itself.

    Order: an explicit ``token``, the ``token_file``, then the environment
    variables HCQW_SLURM_JWT and SLURM_JWT.
    """

    def __init__(self, token: str | Secret | None = None, token_file: str | Path | None = None,
                 environ: Mapping[str, str] | None = None):
        self.__token = hide(token)
        self.token_file = Path(token_file) if token_file else None
        self._environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return f"JwtSource(source={self.describe()!r}, token='***')"

    __str__ = __repr__

    def describe(self) -> str:
        """Where the token would come from, for messages (never the value)."""
        if self.__token:
            return "explicit token"
        if self.token_file:
            return f"token file {self.token_file}"
        for name in TOKEN_ENV_VARS:
            if self._environ.get(name):
                return f"${name}"
        return "none found"

    def expiry_hint(self) -> str:
        """'; the token expired at ...' when the JWT's own exp claim says so, else ''.

        Reads the unsigned payload only to explain a refusal; the value of
        the token is never part of the result.
        """
        try:
            token = self.get()
        except SlurmError:
            return ""
        if not token or token.count(".") != 2:
            return "; no token was sent" if not token else ""
        payload = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            exp = float(claims["exp"])
        except (ValueError, KeyError, TypeError):
            return ""
        if exp < time.time():
            return f"; the token from {self.describe()} expired at {datetime.fromtimestamp(exp).isoformat(timespec='seconds')}"
        return f"; the token from {self.describe()} is not expired, so it was probably issued by another cluster or for another user"

    def get(self) -> str | None:
        """The token, or None when there is none (the request then fails with 401)."""
        if self.__token:
            return self.__token.reveal()
        if self.token_file:
            return read_private(self.token_file)
        for name in TOKEN_ENV_VARS:
            value = self._environ.get(name, "").strip()
            if value:
                return value
        return None


def read_private(path: Path) -> str | None:
    """A token file's content; refused if group or others may read or write the file."""
    try:
        with open(path, "rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o077:
                raise SlurmSettingsError(f"token file {path} is accessible to other users (mode {mode:04o}), so they "
                                         f"may know the token; run: chmod 600 {path} (and get a fresh token)")
            return handle.read().decode("utf-8", "replace").strip() or None
    except OSError as err:
        raise RestAuthError(str(path), 0, f"cannot read the token file: {err.strerror}") from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host name) is this machine's loopback, by literal address or the name localhost."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool) -> str:
    """The slurmrestd base URL, refused when it would send the token in clear text off this machine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SlurmSettingsError(f"slurmrestd URL {url!r} must look like https://host:port or http://host:port")
    if parts.scheme == "http" and not allow_http and not is_loopback(parts.hostname):
        raise SlurmSettingsError(
            f"slurmrestd URL {url!r} is plain http to another host: the JWT would cross the network unencrypted. "
            f"Use https (e.g. slurmrestd behind a TLS proxy), or, on a network you trust, allow it explicitly: "
            f"allow_http=True (--hcqw-rest-allow-http in Snakemake, {ALLOW_HTTP_ENV}=1 elsewhere)"
        )
    return url.rstrip("/")


class _RefuseRedirect(urllib.request.HTTPRedirectHandler):
    """urllib repeats a request's headers (our token) to wherever a redirect points: follow none."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        return None  # urllib then raises the 3xx as an HTTPError, handled in RestBackend._request


_OPENER = urllib.request.build_opener(_RefuseRedirect)


def _error_text(body: bytes) -> str:
    """The error strings of a slurmrestd reply (``{"errors": [{"error": ...}]}``), or its raw start."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip()
    errors = doc.get("errors") or [] if isinstance(doc, dict) else []
    texts = []
    for err in errors:
        if isinstance(err, dict):
            texts.append("; ".join(str(err[k]) for k in ("error", "description") if err.get(k)))
    return " | ".join(t for t in texts if t)


def component_properties(request: JobRequest, spec: ComponentSpec, environment: dict[str, str]) -> dict[str, Any]:
    """One v0.0.38 ``job`` object for a component. Every part needs environment and working directory."""
    if spec.extra:
        raise SlurmSettingsError(
            f"ComponentSpec.extra {list(spec.extra)!r} holds sbatch options, which slurmrestd does not accept: "
            "use backend 'slurm' (sbatch), or express the request with the ComponentSpec fields"
        )
    props: dict[str, Any] = {
        "name": request.job_name,
        "comment": request.job_comment,
        "partition": spec.partition,
        "current_working_directory": str(request.workdir),
        "environment": environment,
        "standard_output": request.output_pattern,
        "nodes": [spec.nodes, spec.nodes],  # v0.0.38 takes [min, max]
        "tasks": spec.ntasks,
        "cpus_per_task": spec.cpus_per_task,
    }
    if request.error:
        props["standard_error"] = request.error
    optional = {
        "account": spec.account,
        "qos": spec.qos,
        "time_limit": spec.time_limit,
        "memory_per_node": spec.mem_mb,
        "gres": spec.gres,
    }
    props.update({k: v for k, v in optional.items() if v is not None})
    return props


def submit_payload(request: JobRequest) -> dict[str, Any]:
    """The JSON body of ``POST job/submit``: ``job`` for a plain job, ``jobs`` (cpu part first) for a hetjob."""
    environment = {"PATH": DEFAULT_JOB_PATH, **request.environment}
    parts = [component_properties(request, spec, environment) for spec in request.components]
    if request.dependency_spec:
        parts[0]["dependency"] = request.dependency_spec
        parts[0]["kill_on_invalid_dependency"] = request.kill_on_invalid_dependency
    if request.nice:
        for part in parts:  # each REST part is its own job description; a hetjob's priority is its lowest part's
            part["nice"] = request.nice
    payload: dict[str, Any] = {"script": render_script(request)}
    if request.is_hetjob:
        payload["jobs"] = parts
    else:
        payload["job"] = parts[0]
    return payload


class RestBackend(BaseBackend):
    """Submit, query and cancel through slurmrestd.

    ``url``: the slurmrestd base URL (``https://host:port``; ``http://`` to a
    loopback host, or anywhere with ``allow_http=True``, default from
    ``$HCQW_SLURM_REST_ALLOW_HTTP``). ``user``: the SLURM user name sent in
    ``X-SLURM-USER-NAME`` (default ``$USER``, else the login name of our uid).
    Token options: see :class:`JwtSource` (``token`` may be a ``Secret``).
    ``outage_bound``: seconds submit (while the controller cannot be reached at all), release and
    cancel ride out a controller outage.
    """

    name = "rest"

    def __init__(
        self,
        *,
        url: str,
        user: str | None = None,
        token: str | Secret | None = None,
        token_file: str | Path | None = None,
        poll_interval: float = 2.0,
        timeout: float = 30.0,
        allow_http: bool | None = None,
        outage_bound: float = OUTAGE_BOUND_S,
    ):
        if allow_http is None:
            allow_http = os.environ.get(ALLOW_HTTP_ENV, "") in ("1", "true", "yes")
        self.url = check_url(url, allow_http)
        self.user = user or os.environ.get("USER") or current_user()
        self._jwt = JwtSource(token, token_file)
        self._timeout = timeout
        self._outage_bound = outage_bound
        super().__init__(StatusPoller(self._query_jobs, poll_interval))

    def __repr__(self) -> str:
        return f"RestBackend(url={self.url!r}, user={self.user!r}, token='***' from {self._jwt.describe()})"

    # -- HTTP --------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call to slurmrestd, with errors mapped to typed exceptions."""
        url = self.url + API + path
        headers = {"X-SLURM-USER-NAME": self.user, "Accept": "application/json"}
        token = self._jwt.get()
        if token:
            headers["X-SLURM-USER-TOKEN"] = token
        else:
            log.warning("no SLURM JWT found (%s); slurmrestd will refuse the request", self._jwt.describe())
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        started = time.monotonic()
        try:
            with _OPENER.open(req, timeout=self._timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
            if 300 <= status < 400:
                raise SlurmSettingsError(
                    f"slurmrestd at {self.url} answered {method} {API + path} with a redirect (HTTP {status}) to "
                    f"{err.headers.get('Location')!r}; hcqw does not follow redirects, which would hand the token "
                    "to another address: give the final URL of slurmrestd instead"
                ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            # `from None`: the chained urllib objects hold our request headers.
            raise ControllerUnreachable(f"slurmrestd at {self.url}", str(reason)) from None
        log.debug("%s %s -> HTTP %d", method, API + path, status)
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = {}
        if status >= 400 or (isinstance(doc, dict) and doc.get("errors")):
            raise self._classify(status, _error_text(raw), time.monotonic() - started)
        return doc if isinstance(doc, dict) else {}

    def _classify(self, status: int, detail: str, elapsed: float) -> SlurmError:
        lowered = detail.lower()
        if any(m in lowered for m in _UNREACHABLE_MARKERS):
            return ControllerUnreachable(f"slurmctld behind {self.url}", detail)
        if _AMBIGUOUS_MARKER in lowered and elapsed >= RETRYING_CONTROLLER_S:
            return ControllerUnreachable(f"slurmctld behind {self.url}", f"{detail} after {elapsed:.1f} s")
        if status in (401, 403) or _AMBIGUOUS_MARKER in lowered or any(m in lowered for m in _AUTH_MARKERS):
            return RestAuthError(self.url, status, detail + self._jwt.expiry_hint())
        return RestServerError(self.url, status, detail)

    # -- backend interface ------------------------------------------------------

    def submit(self, request: JobRequest) -> str:
        """Submit through ``POST job/submit``; return the (leader) job id."""
        payload = submit_payload(request)
        try:
            # A controller that is down (restarting) is ridden out only while slurmrestd cannot reach it at all.
            doc = ride_out(lambda: self._request("POST", "/job/submit", payload), f"submission of {request.tag}",
                           self._outage_bound, retry=never_sent)
        except RestServerError as err:
            raise self._classify_submit(request, err) from None
        job_id = doc.get("job_id")
        if not job_id:
            raise SubmitError(f"slurmrestd returned no job id for {request.tag}")
        self._submitted(request, str(job_id))
        return str(job_id)

    @staticmethod
    def _classify_submit(request: JobRequest, err: RestServerError) -> SlurmError:
        text = str(err).lower()
        gres = ",".join(c.gres for c in request.components if c.gres)
        if "invalid partition" in text:
            return UnknownPartition(",".join(c.partition for c in request.components), err.detail)
        if "gres" in text or "trackable resource" in text:
            return InvalidGres(gres or "(none)", err.detail)
        if gres and "requested node configuration is not available" in text:
            return InvalidGres(gres, err.detail)  # the GRES exists but not there / not that many
        if gres and err.status == 400 and "failure during parsing" in text:
            # slurmrestd 22.05 resolves GRES names while parsing and only its own
            # log says which field failed; every other field was validated here.
            return InvalidGres(gres, err.detail + " (the GRES name is the field slurmrestd could not parse)")
        return err

    def _query_jobs(self, leader_ids: Sequence[str]) -> list[ComponentInfo]:
        # One GET for every job the controller holds; the poller filters.
        doc = self._request("GET", "/jobs")
        wanted = set(leader_ids)
        records = [component_from_rest(job) for job in doc.get("jobs", [])]
        return [r for r in records if r.leader_id in wanted]

    def cancel(self, job_id: str) -> None:
        """Cancel the whole job (every hetjob component), riding out a controller outage (``ride_out``)."""
        leader = leader_of(job_id)
        ride_out(lambda: self._delete(leader), f"cancel of SLURM job {leader}", self._outage_bound)

    def cancel_component(self, job_id: str, offset: int = 1) -> None:
        """End one hetjob component (the early qpu release); the leader runs on.

        slurmrestd does not parse ``123+1`` in a URL, so the component's own
        job id is looked up first (one GET).
        """
        if offset < 1:
            raise SlurmError("component 0 cannot be released on its own: cancelling it ends the whole hetjob")
        # Both requests are safe to repeat: a controller outage is ridden out (``ride_out``).
        ride_out(lambda: self._cancel_component(leader_of(job_id), offset), f"release of {job_id}+{offset}",
                 self._outage_bound)

    def _cancel_component(self, leader: str, offset: int) -> None:
        doc = self._request("GET", f"/job/{leader}")
        for rec in map(component_from_rest, doc.get("jobs", [])):
            if rec.leader_id == leader and rec.het_offset == offset and rec.raw_id:
                try:
                    self._delete(rec.raw_id)
                except RestServerError as err:
                    if "individual component" in err.detail:
                        raise release_refused(f"{leader}+{offset}", err.detail) from None
                    raise
                return
        raise SlurmError(f"SLURM job {leader} has no hetjob component {offset}")

    def _delete(self, target: str) -> None:
        self._request("DELETE", "/job/" + urllib.parse.quote(target, safe=""))
        log.info("cancelled SLURM job %s via %s", target, self.url)
