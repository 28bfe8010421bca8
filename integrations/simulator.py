"""A small base for the vendor simulators: routing, JSON, knobs, a threaded server.

Each vendor's simulator (integrations/<vendor>/simulator.py) subclasses `Simulator`,
declares its routes with `@route`, and keeps its own deterministic state. They are plain
WSGI apps, served over real HTTP by `serve()` (tests, demo, `manage.py sandbox`, the bench's
simulator processes) with persistent HTTP/1.1 connections: a vendor keeps connections
alive, so a client's floor is not inflated by one TCP connection and one thread per request.

Knobs shared by every simulator: `latency_ms` (each answer leaves this long after its
request arrived, the simulator's own work included), `fail_rate`
(this share of requests answer 429 with Retry-After or 500, chosen by a seeded random),
`seed` (data and faults are reproducible).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, unquote

logger = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None):
        return cls(
            status=status,
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None):
        return cls(
            status=status,
            body=text.encode(),
            headers={"Content-Type": "text/plain; charset=utf-8", **(headers or {})},
        )


Handler = Callable[..., Response]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of METHOD /path/{param}."""

    def mark(func: Handler) -> Handler:
        func._route = (method.upper(), pattern)  # type: ignore[attr-defined]
        return func

    return mark


class Simulator:
    name = "vendor"

    def __init__(self, *, seed: int = 7, latency_ms: int = 0, fail_rate: float = 0.0) -> None:
        self.seed = seed
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.fault_random = random.Random(seed * 7919 + 1)
        self.lock = threading.RLock()
        self.request_log: list[tuple[str, str, int]] = []
        # Scripted faults for tests: each entry answers one request matching (method, path
        # regex) with the given status instead of the real handler.
        self.scripted_faults: list[tuple[str, re.Pattern[str], Response]] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        # Routes are looked up on the class: reading every instance attribute here would
        # run a subclass's properties before its __init__ has set what they read.
        for attr in dir(type(self)):
            spec = getattr(getattr(type(self), attr, None), "_route", None)
            if spec:
                handler = getattr(self, attr)
                method, pattern = spec
                regex = re.compile(
                    "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern.rstrip("/")) + "/?$"
                )
                self._routes.append((method, regex, handler))

    # -- knobs used by tests -------------------------------------------------------
    def fail_next(self, method: str, path_regex: str, response: Response, times: int = 1) -> None:
        with self.lock:
            for _ in range(times):
                self.scripted_faults.append((method.upper(), re.compile(path_regex), response))

    def calls(self, method: str | None = None, path_regex: str | None = None) -> list:
        with self.lock:
            return [
                c
                for c in self.request_log
                if (method is None or c[0] == method.upper())
                and (path_regex is None or re.search(path_regex, c[1]))
            ]

    # -- WSGI ----------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(
            method=environ["REQUEST_METHOD"].upper(),
            path=environ.get("PATH_INFO", "/"),
            query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
            headers=headers,
            body=body,
        )
        response = self.dispatch(request)
        with self.lock:
            self.request_log.append((request.method, request.path, response.status))
        reason = HTTPStatus(response.status).phrase
        start_response(
            f"{response.status} {reason}",
            [*response.headers.items(), ("Content-Length", str(len(response.body)))],
        )
        return [response.body]

    def dispatch(self, request: Request) -> Response:
        arrived = time.monotonic()
        response = self._answer(request)
        if self.latency_ms:
            # A vendor's latency includes its own work: the answer leaves `latency_ms` after
            # the request arrived, later only when the work itself took longer.
            left = arrived + self.latency_ms / 1000 - time.monotonic()
            if left > 0:
                time.sleep(left)
        return response

    def _answer(self, request: Request) -> Response:
        with self.lock:
            for i, (method, regex, canned) in enumerate(self.scripted_faults):
                if method == request.method and regex.search(request.path):
                    del self.scripted_faults[i]
                    return canned
            if self.fail_rate and self.fault_random.random() < self.fail_rate:
                if self.fault_random.random() < 0.5:
                    return self.throttled_response()
                return Response.json({"error": "simulated server error"}, status=500)
        path = request.path.rstrip("/") or "/"
        allowed = False
        for method, regex, handler in self._routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if method != request.method:
                continue
            request.params = match.groupdict()
            with self.lock:
                return handler(request, **request.params)
        if allowed:
            return Response.json({"error": "method not allowed"}, status=405)
        return self.not_found(request)

    def throttled_response(self) -> Response:
        return Response.json({"error": "Too many requests"}, 429, {"Retry-After": "1"})

    def not_found(self, request: Request) -> Response:
        return Response.json({"error": f"no route {request.method} {request.path}"}, status=404)


# -- The server ------------------------------------------------------------------------
# A small threaded HTTP/1.1 server over http.server running the simulators' WSGI apps: one
# thread per connection (not per request), connections kept alive until the client says
# `Connection: close`, goes away, or stays idle for KEEP_ALIVE_IDLE_SECONDS. Each response
# is written in one send with its Content-Length computed from the body.

KEEP_ALIVE_IDLE_SECONDS = 60
MAX_LINE = 65536
# Connections still busy this long after stop() asked them to finish are cut.
STOP_GRACE_SECONDS = 5.0


class BadRequest(Exception):
    """A request the server cannot read (answered 400, connection closed)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Read a request line without a version as HTTP/1.0 (answered with headers, then
    # closed), never as HTTP/0.9 (a bare body).
    default_request_version = "HTTP/1.0"
    server_version = "ClassbridgeSimulator/1"
    timeout = KEEP_ALIVE_IDLE_SECONDS
    disable_nagle_algorithm = True
    server: _Server

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(MAX_LINE + 1)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if not self.raw_requestline:  # the client (or stop()) closed the connection
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_LINE:
            self.requestline = self.request_version = self.command = ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():  # answered (400, 505, ...) with Connection: close
            return
        try:
            body = self._read_body()
        except BadRequest as exc:
            self.send_error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except (TimeoutError, ConnectionError):
            self.close_connection = True
            return
        if self.server.stopping:
            self.close_connection = True
        self._respond(body)

    def _read_body(self) -> bytes:
        """The whole request body, so the next request on the connection starts clean."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise BadRequest(f"Content-Length {length!r} is not a number") from None
        if size < 0:
            raise BadRequest(f"Content-Length {length!r} is negative")
        body = self.rfile.read(size)
        if len(body) < size:
            raise ConnectionError("the client closed the connection inside the body")
        return body

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                raise ConnectionError("the client closed the connection inside the body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise BadRequest(f"bad chunk size line {line[:40]!r}") from None
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise ConnectionError("the client closed the connection inside the body")
            parts.append(chunk)
            self.rfile.readline(MAX_LINE + 1)  # the CRLF closing the chunk
        while self.rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
            pass  # trailers: ignored
        return b"".join(parts)

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _respond(self, body: bytes) -> None:
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            if started and not exc_info:
                raise AssertionError("start_response called twice without exc_info")
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(self._environ(body), start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            if not started:
                raise AssertionError("the app returned without calling start_response")
            status, headers = started
        except Exception:
            logger.exception("simulator error answering %s %s", self.command, self.path)
            self.close_connection = True
            status = "500 Internal Server Error"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            chunks = [b"simulator error (see the server log)"]
        payload = b"".join(chunks)
        lines = [f"{self.protocol_version} {status}"]
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(payload)}")
        lines.append(f"Date: {formatdate(usegmt=True)}")
        lines.append(f"Server: {self.server_version}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head if self.command == "HEAD" else head + payload)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        if not self.server.quiet:
            self.log_request(status.split(" ", 1)[0], len(payload))

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)


class _Server(ThreadingMixIn, HTTPServer):
    """One daemon thread per connection, each tracked so stop() can end and join it."""

    daemon_threads = True  # never keep the interpreter alive (sandbox, Ctrl-C)
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Callable, *, quiet: bool) -> None:
        self.app = app
        self.quiet = quiet
        self.stopping = False
        self.accepted = 0  # connections accepted so far (tests: proof of keep-alive)
        self.connections: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered here, in the accepting thread, so stop() sees every accepted one.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{threading.current_thread().name}-conn",
            daemon=True,
        )
        with self.connections_lock:
            self.accepted += 1
            self.connections.add(request)
            self.threads = [t for t in self.threads if t.is_alive()]
            self.threads.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)

    def end_connections(self, how: int) -> None:
        """Shut the open connections down (SHUT_RD: a handler waiting for the next request
        sees the end of the stream at once; one answering a request still sends it)."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(how)

    def handler_threads(self) -> list[threading.Thread]:
        with self.connections_lock:
            return [t for t in self.threads if t.is_alive()]


@dataclass
class RunningServer:
    simulator: Simulator
    server: _Server
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop accepting, end every kept-alive connection, join every thread. Returns at
        once when connections are idle; a request being answered is answered first (up to
        STOP_GRACE_SECONDS), then its connection is cut."""
        server = self.server
        server.stopping = True
        server.shutdown()
        server.end_connections(socket.SHUT_RD)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for thread in server.handler_threads():
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if server.handler_threads():
            server.end_connections(socket.SHUT_RDWR)
        for thread in server.handler_threads():
            thread.join(timeout=1)
        server.server_close()
        self.thread.join(timeout=5)


def serve(
    simulator: Simulator, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True
) -> RunningServer:
    """Serve a simulator in a background thread; port 0 picks a free port."""
    server = _Server((host, port), simulator, quiet=quiet)
    # A short poll interval: stop() waits up to one interval, once per test.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"sim-{simulator.name}",
        daemon=True,
    )
    thread.start()
    return RunningServer(simulator=simulator, server=server, thread=thread)
