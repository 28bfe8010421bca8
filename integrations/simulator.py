"""A small base for the vendor simulators: routing, JSON, knobs, a threaded server.

Each vendor's simulator (integrations/<vendor>/simulator.py) subclasses `Simulator`,
declares its routes with `@route`, and keeps its own deterministic state. They are plain
WSGI apps, served over real HTTP by `serve()` (tests, demo) or `manage.py sandbox`.

Knobs shared by every simulator: `latency_ms` (each request waits this long), `fail_rate`
(this share of requests answer 429 with Retry-After or 500, chosen by a seeded random),
`seed` (data and faults are reproducible).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


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
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
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


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class RunningServer:
    simulator: Simulator
    server: _ThreadingServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(
    simulator: Simulator, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True
) -> RunningServer:
    """Serve a simulator in a background thread; port 0 picks a free port."""
    server = make_server(
        host,
        port,
        simulator,
        server_class=_ThreadingServer,
        handler_class=_QuietHandler if quiet else WSGIRequestHandler,
    )
    # A short poll interval: stop() waits up to one interval, once per test.
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"sim-{simulator.name}",
        daemon=True,
    )
    thread.start()
    return RunningServer(simulator=simulator, server=server, thread=thread)
