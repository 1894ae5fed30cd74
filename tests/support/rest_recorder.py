"""A real HTTP server standing in for slurmrestd where only the client side is under test:
it records every request's headers, answers submit/query/cancel minimally, or redirects."""

from __future__ import annotations

import http.server
import json
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self, doc: dict) -> None:
        self.server.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.server.redirect_to:
            self.send_response(307)
            self.send_header("Location", self.server.redirect_to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer({"jobs": []})

    def do_POST(self):
        self._answer({"job_id": 4242})

    def do_DELETE(self):
        self._answer({})

    def log_message(self, *args):
        pass


class RestRecorder:
    """``with RestRecorder() as server``: ``server.url``; ``server.tokens()`` lists the token of each request."""

    def __init__(self, redirect_to: str | None = None):
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.seen, self._server.redirect_to = [], redirect_to
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[tuple[str, str, dict]]:
        return self._server.seen

    def tokens(self) -> list[str | None]:
        return [headers.get("x-slurm-user-token") for _, _, headers in self.seen]

    def __enter__(self) -> "RestRecorder":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
