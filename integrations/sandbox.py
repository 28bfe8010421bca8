"""The local vendor simulators, served together by `manage.py sandbox`.

Every `*_BASE_URL` is scheme and host only and two vendors share `/api/v1` paths, so each
simulator gets its own port: the base port plus the offset below.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.module_loading import import_string

from integrations.simulator import RunningServer, Simulator, serve


@dataclass(frozen=True)
class SandboxEntry:
    name: str
    factory: str  # dotted path of a callable(seed=, latency_ms=, fail_rate=, **kw) -> Simulator
    port_offset: int
    base_url_setting: str


SANDBOX: list[SandboxEntry] = [
    SandboxEntry("openclass", "integrations.openclass.simulator.build", 0, "OPENCLASS_BASE_URL"),
    SandboxEntry("apex", "integrations.apex.simulator.build", 1, "APEX_BASE_URL"),
    SandboxEntry("canvas", "integrations.canvas.simulator.build", 3, "CANVAS_BASE_URL"),
]

DEFAULT_PORT = 8765


def available_entries() -> list[SandboxEntry]:
    """Entries whose simulator module exists (vendors join as they are built)."""
    found = []
    for entry in SANDBOX:
        try:
            import_string(entry.factory)
        except ImportError:
            continue
        found.append(entry)
    return found


def sandbox_start(
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    seed: int = 7,
    latency_ms: int = 0,
    fail_rate: float = 0.0,
    options: dict[str, dict] | None = None,
) -> dict[str, RunningServer]:
    """Start every available simulator; returns name -> running server."""
    servers: dict[str, RunningServer] = {}
    for entry in available_entries():
        kwargs = dict((options or {}).get(entry.name, {}))
        simulator: Simulator = import_string(entry.factory)(
            seed=seed, latency_ms=latency_ms, fail_rate=fail_rate, **kwargs
        )
        servers[entry.name] = serve(simulator, host=host, port=port + entry.port_offset)
    return servers


def sandbox_env(servers: dict[str, RunningServer]) -> dict[str, str]:
    """Settings that point Classbridge at running simulators (demo credentials included)."""
    env: dict[str, str] = {}
    for entry in SANDBOX:
        server = servers.get(entry.name)
        if server is None:
            continue
        env[entry.base_url_setting] = server.base_url
        env.update(getattr(server.simulator, "demo_settings", {}))
    return env
