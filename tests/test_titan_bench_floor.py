"""The titan-plan benchmark's floor reads the very pages the job reads, whether one session
reads them one after the other or several threads share them."""

from __future__ import annotations

from collections import Counter

from bench.cases.jobs import titan_floor_fetch
from integrations.simulator import serve
from integrations.titan.simulator import DEMO_API_KEY, build


def test_the_floor_fetches_every_page_the_plan_reads_with_one_or_many_sessions():
    sim = build(bench_memberships=1_234)  # 50 sites of 24 or 25 members, 13 user pages
    server = serve(sim)
    try:
        one = titan_floor_fetch(server.base_url, DEMO_API_KEY)
        sim.request_log.clear()
        many = titan_floor_fetch(server.base_url, DEMO_API_KEY, threads=4)
    finally:
        server.stop()
    assert one == many == 2 + 13 + 50
    got = Counter(path for _method, path, status in sim.request_log if status == 200)
    assert got["/api/v1/users"] == 13 and got["/api/v1/sites/50/members"] == 1
    assert sum(got.values()) == many and len(got) == 2 + 1 + 50
