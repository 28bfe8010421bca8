"""integrations.http reads requests' environment settings once per client (proxies,
NO_PROXY, the CA bundle, ~/.netrc), for its one origin, not on every call."""

from __future__ import annotations

import base64

import pytest
import requests

from integrations.http import HttpClient
from integrations.simulator import Request, Response, Simulator, serve


class Seen(Simulator):
    """Answers everything, remembering the request target and Authorization header."""

    name = "seen"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.seen: list[tuple[str, str]] = []

    def dispatch(self, request: Request) -> Response:
        self.seen.append((request.path, request.header("authorization")))
        return Response.json({"ok": True})


@pytest.fixture
def seen():
    server = serve(Seen())
    yield server
    server.stop()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


def test_a_proxy_from_the_environment_is_still_used(seen, clean_env):
    clean_env.setenv("HTTP_PROXY", seen.base_url)
    client = HttpClient("http://vendor.invalid/api", vendor="X")
    assert client.session.trust_env is False  # read once, at construction
    assert client.request("GET", "/things").json() == {"ok": True}
    # The proxy got the absolute URL: the call went through it.
    assert seen.simulator.seen == [("http://vendor.invalid/api/things", "")]


def test_no_proxy_is_honoured(seen, clean_env):
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    clean_env.setenv("NO_PROXY", "127.0.0.1")
    client = HttpClient(seen.base_url, vendor="X")
    assert client.request("GET", "/direct").ok
    assert seen.simulator.seen == [("/direct", "")]


def test_netrc_credentials_apply_when_a_call_has_no_auth_of_its_own(seen, clean_env, tmp_path):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\nlogin someone\npassword pass-word\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    client = HttpClient(seen.base_url, vendor="X")
    client.request("GET", "/a")
    client.request("GET", "/b", auth=("other", "pw"))
    basic = "Basic " + base64.b64encode(b"someone:pass-word").decode()
    other = "Basic " + base64.b64encode(b"other:pw").decode()
    assert seen.simulator.seen == [("/a", basic), ("/b", other)]


def test_the_ca_bundle_from_the_environment_is_kept(clean_env, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert HttpClient("https://vendor.invalid", vendor="X").session.verify == str(bundle)


def test_the_environment_is_read_once_per_client_not_per_call(seen, clean_env):
    reads = []
    real = requests.sessions.get_environ_proxies
    clean_env.setattr(
        requests.sessions, "get_environ_proxies", lambda *a, **k: reads.append(a) or real(*a, **k)
    )
    client = HttpClient(seen.base_url, vendor="X")
    for _ in range(5):
        client.request("GET", "/x")
    assert len(reads) == 1


def test_a_session_that_trusts_nothing_is_left_alone(seen, clean_env):
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    session = requests.Session()
    session.trust_env = False
    client = HttpClient(seen.base_url, vendor="X", session=session)
    assert client.session.proxies == {}
    assert client.request("GET", "/y").ok
