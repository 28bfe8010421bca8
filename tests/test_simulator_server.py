"""The simulators' HTTP/1.1 server (integrations.simulator.serve): kept-alive connections,
`Connection: close`, whole request bodies read, errors answered, a prompt stop()."""

from __future__ import annotations

import gc
import http.client
import socket
import threading
import warnings

import pytest
import requests

from integrations.simulator import Request, Response, Simulator, route, serve


class Echo(Simulator):
    name = "echo"

    @route("GET", "/hello")
    def hello(self, request: Request) -> Response:
        return Response.json({"hello": request.arg("who", "world")})

    @route("POST", "/echo")
    def echo(self, request: Request) -> Response:
        return Response.json(
            {"body": request.body.decode(), "type": request.header("content-type")}
        )

    @route("GET", "/boom")
    def boom(self, request: Request) -> Response:
        raise RuntimeError("the handler failed")


@pytest.fixture
def echo():
    server = serve(Echo())
    yield server
    server.stop()


def _raw(server, data: bytes) -> bytes:
    """Send raw bytes on a fresh connection; read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_session_reuses_one_connection_for_every_request(echo):
    with requests.Session() as session:
        for i in range(5):
            got = session.get(f"{echo.base_url}/hello", params={"who": str(i)})
            assert got.json() == {"hello": str(i)}
            assert got.headers["Content-Length"] == str(len(got.content))
            assert "close" not in got.headers.get("Connection", "")
        posted = session.post(f"{echo.base_url}/echo", json={"a": 1})
        assert posted.json() == {"body": '{"a": 1}', "type": "application/json"}
    assert echo.server.accepted == 1
    assert len(echo.simulator.request_log) == 6


def test_connection_close_is_honoured(echo):
    answer = _raw(
        echo,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\n\r\n",
    )
    # One answer, then the server closed the connection: the second request is not read.
    assert answer.count(b"HTTP/1.1 200") == 1
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert echo.simulator.request_log == [("GET", "/hello", 200)]


def test_an_http_10_request_gets_one_answer_and_a_closed_connection(echo):
    answer = _raw(echo, b"GET /hello?who=old HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"hello": "old"}')


def test_request_bodies_are_read_whole_so_the_next_request_starts_clean(echo):
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        chunked = b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n"
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            + chunked
            + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
            + b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert b'{"body": "abcdefg", "type": "text/plain"}' in answer
    assert b'{"body": "xyz", "type": ""}' in answer
    assert echo.server.accepted == 1


def test_a_failing_handler_is_answered_500_and_the_server_keeps_serving(echo, caplog):
    with requests.Session() as session:
        failed = session.get(f"{echo.base_url}/boom")
        assert failed.status_code == 500
        assert failed.headers["Connection"] == "close"
        assert failed.headers["Content-Length"] == str(len(failed.content))
        assert session.get(f"{echo.base_url}/hello").status_code == 200
    assert "the handler failed" in caplog.text


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"POST /echo HTTP/1.1\r\nContent-Length: many\r\n\r\n", b"400"),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"414"),
    ],
)
def test_unreadable_requests_are_answered_and_closed(echo, request_bytes, status):
    answer = _raw(echo, request_bytes)
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.split(b" ")[1] == status
    assert b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert echo.simulator.request_log == []


def test_head_gets_the_headers_without_the_body(echo):
    conn = http.client.HTTPConnection("127.0.0.1", echo.port, timeout=10)
    try:
        conn.request("HEAD", "/hello")
        head = conn.getresponse()
        assert head.status == 405  # the simulator routes GET only; still answered
        assert head.read() == b""
        conn.request("GET", "/hello")  # the same connection, still in step
        assert conn.getresponse().read() == b'{"hello": "world"}'
    finally:
        conn.close()
    assert echo.server.accepted == 1


def test_stop_ends_idle_kept_alive_connections_and_joins_every_thread():
    server = serve(Echo())
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    idle.request("GET", "/hello")
    assert idle.getresponse().read() == b'{"hello": "world"}'
    handlers = server.server.handler_threads()
    assert len(handlers) == 1  # waiting on the idle connection for its next request
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=20)  # a guard against a hang, not a timing assertion
    assert not stopper.is_alive()
    assert not server.thread.is_alive()
    assert not any(thread.is_alive() for thread in handlers)
    assert server.server.connections == set()
    assert idle.sock.recv(1) == b""  # the server closed its end
    idle.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.base_url}/hello", timeout=5)


def test_many_servers_start_and_stop_without_leaking_threads_or_sockets():
    before = {t for t in threading.enumerate()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(5):
            server = serve(Echo())
            session = requests.Session()  # kept open across stop(): the server ends it
            assert session.get(f"{server.base_url}/hello").ok
            server.stop()
            session.close()
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert {t for t in threading.enumerate() if t.is_alive()} - before == set()


def test_a_request_being_answered_when_stop_is_called_still_gets_its_answer():
    sim = Echo(latency_ms=300)
    server = serve(sim)
    got: list = []
    client = threading.Thread(
        target=lambda: got.append(requests.get(f"{server.base_url}/hello", timeout=10))
    )
    client.start()
    while not server.server.connections:  # accepted; its handler is in the latency sleep
        threading.Event().wait(0.01)
    server.stop()
    client.join(timeout=20)
    assert got and got[0].status_code == 200 and got[0].json() == {"hello": "world"}


class FakeClock:
    """`integrations.simulator`'s `time`: a handler's work moves it; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


class Slow(Simulator):
    """Its handler's work takes `work` seconds of `clock`."""

    name = "slow"

    def __init__(self, clock: FakeClock, work: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.clock, self.work = clock, work

    @route("GET", "/work")
    def do_work(self, request: Request) -> Response:
        self.clock.now += self.work
        return Response.json({"done": True})


@pytest.mark.parametrize(
    ("work", "slept"),
    [(0.0, [0.05]), (0.03, [0.02]), (0.05, []), (0.07, [])],
)
def test_latency_counts_from_the_arrival_and_includes_the_simulators_own_work(
    monkeypatch, work, slept
):
    fake = FakeClock()
    monkeypatch.setattr("integrations.simulator.time", fake)
    sim = Slow(fake, work, latency_ms=50)
    response = sim.dispatch(Request(method="GET", path="/work", query={}, headers={}, body=b""))
    assert response.status == 200
    # The answer leaves 50 ms after the request arrived: the work's time is part of it,
    # and work longer than the latency is never padded.
    assert fake.slept == slept
    assert fake.now == pytest.approx(100.0 + max(work, 0.05))
