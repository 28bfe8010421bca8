"""`python -m bench.simserve FACTORY KWARGS_JSON`: serve one simulator; prints its base URL."""

from __future__ import annotations

import json
import signal
import sys
import threading


def main() -> None:
    factory, kwargs = sys.argv[1], json.loads(sys.argv[2])
    import django

    django.setup()
    from django.utils.module_loading import import_string

    from integrations.simulator import serve

    server = serve(import_string(factory)(**kwargs))
    print(server.base_url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
