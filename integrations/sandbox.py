"""The local vendor simulators, served together by `manage.py sandbox`.

Every `*_BASE_URL` is scheme and host only and two vendors share `/api/v1` paths, so each
simulator gets its own port: the base port plus the offset its kind declares
(`SimulatorSpec` in the vendor's kind.py, read through integrations/registry.py).
"""

from __future__ import annotations

from django.utils.module_loading import import_string

from integrations import registry
from integrations.simulator import RunningServer, Simulator, serve

DEFAULT_PORT = 8765


def sandbox_start(
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    seed: int = 7,
    latency_ms: int = 0,
    fail_rate: float = 0.0,
    options: dict[str, dict] | None = None,
) -> dict[str, RunningServer]:
    """Start every registered simulator; returns name -> running server."""
    servers: dict[str, RunningServer] = {}
    for entry in registry.simulators():
        kwargs = dict((options or {}).get(entry.name, {}))
        simulator: Simulator = import_string(entry.factory)(
            seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, **kwargs
        )
        servers[entry.name] = serve(simulator, host=host, port=port + entry.port_offset)
    return servers


def sandbox_env(servers: dict[str, RunningServer]) -> dict[str, str]:
    """Settings that point Classbridge at running simulators (demo credentials included)."""
    env: dict[str, str] = {}
    for entry in registry.simulators():
        server = servers.get(entry.name)
        if server is None:
            continue
        env[entry.base_url_setting] = server.base_url
        env.update(getattr(server.simulator, "demo_settings", {}))
    return env
