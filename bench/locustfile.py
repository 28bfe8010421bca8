"""Signed-in mentors for the `load` case (bench/cases/load.py), run by locust headless.

Not in bench/cases (locust patches the standard library with gevent; the harness must never
import this). Everything it needs comes from the JSON file named by BENCH_LOAD_CONFIG:
`{"sessions": [session keys], "token": API key, "paths": {name: path with {student}},
"students": [ids], "weights": {name: int}}`. Each simulated mentor uses its own session
(made by Django's login before the test) and the API key for the API paths. No think time:
each mentor asks again as soon as it has its answer, so N mentors keep N requests in flight.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import FastHttpUser, constant, task

with open(os.environ["BENCH_LOAD_CONFIG"]) as _f:
    CONFIG = json.load(_f)
_sessions = itertools.cycle(CONFIG["sessions"])
_rng = random.Random(11)


def _picker():
    names = list(CONFIG["weights"])
    weights = [CONFIG["weights"][n] for n in names]
    while True:
        yield _rng.choices(names, weights)[0]


_names = _picker()


class Mentor(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 120.0
    connection_timeout = 30.0

    def on_start(self) -> None:
        self.session_cookie = f"sessionid={next(_sessions)}"

    @task
    def one(self) -> None:
        name = next(_names)
        path = CONFIG["paths"][name].format(student=_rng.choice(CONFIG["students"]))
        if name.startswith("api"):
            headers = {"Authorization": f"Token {CONFIG['token']}"}
        else:
            headers = {"Cookie": self.session_cookie}
        # No redirects followed: a session that is not signed in gets 302 to the sign-in
        # page, which counts as an error.
        with self.client.get(
            path, headers=headers, name=name, catch_response=True, allow_redirects=False
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
