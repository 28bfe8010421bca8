"""manage.py sandbox's engine: every simulator on base port + offset, OpenClass among them."""

from __future__ import annotations

import socket

import pytest

from integrations.http import AuthError, RetryPolicy
from integrations.openclass.client import OpenClassClient
from integrations.openclass.simulator import DEMO_CLASSES
from integrations.registry import simulators
from integrations.sandbox import sandbox_env, sandbox_start


def free_base_port() -> int:
    """A port whose neighbours up to the largest sandbox offset are free too."""
    span = max(entry.port_offset for entry in simulators()) + 1
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + span > 65535:
            continue
        sockets = []
        try:
            for offset in range(span):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    pytest.fail("no run of free ports found for the sandbox")


@pytest.fixture
def sandbox():
    base = free_base_port()
    servers = sandbox_start(port=base, options={"openclass": {"token_lifetime": 600}})
    yield base, servers
    for server in servers.values():
        server.stop()


def client_for(env: dict[str, str], password: str | None = None) -> OpenClassClient:
    return OpenClassClient(
        env["OPENCLASS_BASE_URL"],
        email=env["OPENCLASS_EMAIL"],
        password=env["OPENCLASS_PASSWORD"] if password is None else password,
        app_id=env["OPENCLASS_APP_ID"],
        retry=RetryPolicy(max_retries=0, sleep=lambda seconds: None),
    )


def test_sandbox_serves_openclass_on_the_base_port(sandbox):
    base, servers = sandbox
    assert servers["openclass"].port == base
    assert servers["openclass"].simulator.token_lifetime == 600
    # Every simulator a kind declares is served, each on its own offset.
    assert {"openclass", "apex"} <= set(servers) == {entry.name for entry in simulators()}
    for entry in simulators():
        assert servers[entry.name].port == base + entry.port_offset
    env = sandbox_env(servers)
    for entry in simulators():
        assert env[entry.base_url_setting] == servers[entry.name].base_url


def test_a_login_works_with_the_printed_settings(sandbox):
    _, servers = sandbox
    env = sandbox_env(servers)
    assert env["OPENCLASS_BASE_URL"] == servers["openclass"].base_url
    assert len(env["OPENCLASS_APP_ID"]) == 64
    client = client_for(env)
    client.login()
    classes = client.list_classes()
    assert [(c.id, c.name) for c in classes] == DEMO_CLASSES


def test_wrong_password_is_refused(sandbox):
    _, servers = sandbox
    with pytest.raises(AuthError):
        client_for(sandbox_env(servers), password="not-the-demo-password").login()


def test_the_command_gives_the_token_lifetime_to_every_registered_simulator(monkeypatch):
    from django.core.management import CommandError, call_command

    from integrations.management.commands import sandbox as command

    seen = {}

    def fake_start(**kwargs):
        seen.update(kwargs)
        return {}  # nothing served: the command stops with an error

    monkeypatch.setattr(command, "sandbox_start", fake_start)
    with pytest.raises(CommandError, match="no simulator is available"):
        call_command("sandbox", "--token-lifetime", "9")
    assert seen["options"] == {entry.name: {"token_lifetime": 9} for entry in simulators()}
    assert {"openclass", "apex"} <= set(seen["options"])
