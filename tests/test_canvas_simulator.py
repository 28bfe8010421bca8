"""The Canvas simulator serves the contract's quirks (vendor-contracts.md section 4)."""

from __future__ import annotations

import requests

from integrations.canvas.simulator import (
    ACCOUNT_ID,
    BIOLOGY,
    CHEMISTRY,
    DEMO_TOKEN,
    THROTTLE_TEXT,
    build,
)
from integrations.simulator import serve

AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}


def test_link_paging_is_opaque_clamped_and_has_no_last():
    server = serve(build())
    try:
        url = f"{server.base_url}/api/v1/courses/{BIOLOGY}/students/submissions"
        first = requests.get(url, headers=AUTH, params={"student_ids[]": "all", "per_page": 500})
        assert len(first.json()) == 100  # clamped to 100
        assert 'rel="last"' not in first.headers["Link"]
        next_url = first.links["next"]["url"]
        assert "page=" in next_url and "page=2" not in next_url  # a bookmark, not a number
        rest = requests.get(next_url, headers=AUTH)
        assert "next" not in rest.links
        default = requests.get(url, headers=AUTH, params={"student_ids[]": "all"})
        assert len(default.json()) == 10  # Canvas's default per_page
        assert float(first.headers["X-Request-Cost"]) > 0
        assert float(first.headers["X-Rate-Limit-Remaining"]) > 0
    finally:
        server.stop()


def test_the_bucket_overflows_into_a_text_403():
    now = [0.0]
    sim = build(high_water=60.0, request_cost=40.0, leak_rate=1.0, clock=lambda: now[0])
    server = serve(sim)
    try:
        url = f"{server.base_url}/api/v1/courses/{BIOLOGY}"
        statuses = [requests.get(url, headers=AUTH).status_code for _ in range(4)]
        assert 403 in statuses
        refused = requests.get(url, headers=AUTH)
        assert refused.status_code == 403 and refused.text == THROTTLE_TEXT
        assert refused.headers["Content-Type"].startswith("text/plain")
        now[0] += 1000  # it leaks away
        assert requests.get(url, headers=AUTH).status_code == 200
    finally:
        server.stop()


def test_left_out_enrollments_and_separate_module_items():
    sim = build()
    server = serve(sim)
    try:
        everyone = requests.get(
            f"{server.base_url}/api/v1/courses/{CHEMISTRY}/enrollments",
            headers=AUTH,
            params={"per_page": 100},
        ).json()
        kinds = {(e["type"], e["enrollment_state"]) for e in everyone}
        assert {
            ("TeacherEnrollment", "active"),
            ("TaEnrollment", "active"),
            ("StudentViewEnrollment", "active"),
            ("StudentEnrollment", "invited"),
            ("StudentEnrollment", "inactive"),
            ("StudentEnrollment", "completed"),
        } <= kinds
        modules = requests.get(
            f"{server.base_url}/api/v1/courses/{CHEMISTRY}/modules",
            headers=AUTH,
            params={"include[]": "items"},
        ).json()
        assert all("items" not in m for m in modules)
        courses = requests.get(
            f"{server.base_url}/api/v1/accounts/{ACCOUNT_ID}/courses",
            headers=AUTH,
            params={"per_page": 100},
        ).json()
        assert {c["workflow_state"] for c in courses} == {"available", "unpublished", "completed"}
        users = [sim.users[u] for u in sim.active_students(BIOLOGY)]
        assert any(u.email is None for u in users)
    finally:
        server.stop()
