"""Issue 11, the roster jobs: the request rate as the vendor counts it, run items written in
one statement, the APEX simulator's arrival log, and Titan's pages read several at a time.
No timing assertions: the rate is checked on a fake clock and on the simulator's own log."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from integrations.apex.simulator import ARRIVALS_PATH, max_in_window
from integrations.http import ConfigError, RateLimiter
from reports.models import RunItem

from .test_apex_enroll import grid, run_file, write


class FakeTime:
    """A clock that only moves when the code under test sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def arrivals_of(limiter: RateLimiter, clock: FakeTime, calls: int, duration: float) -> list:
    """Run `calls` one after the other, each taking `duration`; a vendor may count each
    one at its end (the latest moment it can arrive)."""
    ends = []
    for _ in range(calls):
        slot = limiter.wait()
        clock.now += duration
        ends.append(clock.now)
        limiter.done(slot)
    return ends


def test_max_in_window_counts_a_half_open_window():
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.999, 1.0, 1.5]) == 3
    assert max_in_window([2.0, 0.0, 1.0]) == 1  # any order; exactly a second apart: not within


@pytest.mark.parametrize(("rate", "most"), [(10, 10), (2.5, 2), (1, 1)])
def test_the_limiter_never_lets_more_than_the_rate_arrive_in_a_second(rate, most):
    # Calls that take long and are counted when they end: spacing the starts alone would
    # let two calls' arrivals fall within one second (the answer of a spaced call comes
    # back late, the next one is counted early).
    clock = FakeTime()
    limiter = RateLimiter(rate, sleep=clock.sleep, clock=clock.clock)
    ends = arrivals_of(limiter, clock, calls=60, duration=0.3)
    assert max_in_window(ends) <= most
    # A call may also be counted the moment it starts: those never crowd either.
    starts = [end - 0.3 for end in ends]
    assert max_in_window(starts) <= most


def test_a_rate_below_one_a_second_spaces_calls_by_its_inverse():
    clock = FakeTime()
    limiter = RateLimiter(0.5, sleep=clock.sleep, clock=clock.clock)
    ends = arrivals_of(limiter, clock, calls=5, duration=0.1)
    assert max_in_window(ends, 2.0) == 1


def test_no_rate_means_no_waiting_and_no_slots():
    clock = FakeTime()
    limiter = RateLimiter(0, sleep=clock.sleep, clock=clock.clock)
    assert limiter.wait() is None
    limiter.done(None)
    assert clock.now == 0.0


@pytest.mark.django_db
def test_an_enrollment_never_exceeds_the_rate_in_the_simulators_own_log(apex, tmp_path, settings):
    # Real sleeping here (the tests' default is to compute delays, not sleep them): the
    # simulator logs when each request arrived and throttles (429) above the same rate.
    settings.HTTP_RETRY_SLEEP = True
    settings.APEX_REQUESTS_PER_SECOND = 8
    settings.APEX_BATCH_SIZE = 1
    sim = apex(rate_limit=8)
    run = run_file(write(tmp_path, grid(4, 5)))
    assert run.status == "succeeded", run.message
    assert run.counts["enrolled"] == 20
    assert len(sim.arrivals) == 21  # the token and one request per student
    assert sim.max_per_window(1.0) <= 8
    assert not [call for call in sim.request_log if call[2] == 429]


def test_the_apex_simulator_lists_arrivals_over_http(apex):
    import requests

    sim = apex()
    base = f"http://127.0.0.1:{_port(sim)}"
    requests.post(base + "/token", json={}, timeout=5)
    listed = requests.get(base + ARRIVALS_PATH, timeout=5).json()["arrivals"]
    assert [(method, path) for _t, method, path in listed] == [("POST", "/token")]


def _port(sim) -> int:
    from django.conf import settings

    return int(settings.APEX_BASE_URL.rsplit(":", 1)[1])


@pytest.mark.django_db
def test_run_items_are_written_whole_in_one_statement_per_flush(
    django_assert_num_queries, run_factory
):
    from reports.services import RunTracker

    run = run_factory(status="running")
    tracker = RunTracker(run)
    for n in range(3):
        tracker.item(
            outcome="failed",
            key=f"k{n}" * 150,  # cut to the field's 200 characters
            label="Row",
            group="G",
            seq=10 + n,
            error_class="not_found",
            message="gone",
            data={"row": n, "nested": {"a": [1, 2]}},
        )
    with django_assert_num_queries(4):  # savepoint, heartbeat (the lease), the insert, release
        tracker.flush_items()
    items = list(RunItem.objects.filter(run=run).order_by("seq"))
    assert [i.seq for i in items] == [10, 11, 12]
    first = items[0]
    assert len(first.key) == 200 and first.group == "G" and first.outcome == "failed"
    assert first.error_class == "not_found" and first.message == "gone"
    assert first.data == {"row": 0, "nested": {"a": [1, 2]}} and first.created_at is not None


# --- Titan: pages read several at a time ----------------------------------------------
def _titan_client(settings, concurrency: int):
    from integrations.titan.client import TitanClient

    settings.TITAN_READ_CONCURRENCY = concurrency
    return TitanClient.from_settings()


def test_titan_pages_read_at_once_give_the_same_state_in_the_same_order(titan, settings):
    sim = titan(users=700)
    settings.TITAN_PER_PAGE = 25  # 28 pages of users
    one = _titan_client(settings, 1)
    many = _titan_client(settings, 4)
    try:
        sequential, parallel = one.read_state(), many.read_state()
    finally:
        one.close()
        many.close()
    assert parallel.users == sequential.users and len(parallel.users) == 700
    assert parallel.members == sequential.members
    assert [u.id for u in parallel.users] == sorted(u.id for u in parallel.users)
    pages = [c for c in sim.calls("GET", r"^/api/v1/users$")]
    assert len(pages) == 2 * 28


class CannedPages:
    """TitanClient._page from a table: page -> (items, total_pages the page claims)."""

    def __init__(self, pages: dict[int, tuple[list, int]]) -> None:
        self.pages = pages
        self.asked: list[int] = []

    def __call__(self, path: str, what: str, page: int) -> tuple[list, int]:
        self.asked.append(page)
        return self.pages[page]


@pytest.mark.parametrize("concurrency", [1, 4])
def test_titan_paging_ends_as_the_pages_say_whether_read_one_by_one_or_at_once(
    concurrency, settings
):
    from integrations.titan.client import TitanClient

    def listed(pages):
        http = SimpleNamespace(session=SimpleNamespace(close=lambda: None))
        client = TitanClient(http, read_concurrency=concurrency)
        client._page = CannedPages(pages)
        try:
            return list(client._pages("/x", "things", None)), client._page.asked
        finally:
            client.close()

    # Page 1 says five pages, page 3 says three: the list ends after page 3.
    shrinking = {1: ([1], 5), 2: ([2], 5), 3: ([3], 3), 4: ([4], 5), 5: ([5], 5)}
    items, asked = listed(shrinking)
    assert items == [1, 2, 3]
    # An empty page ends the list too, whatever the total says.
    items, asked = listed({1: ([1], 4), 2: ([], 4), 3: ([3], 4), 4: ([4], 4)})
    assert items == [1]
    # A total that grows is followed to its end.
    items, asked = listed({1: ([1], 2), 2: ([2], 3), 3: ([3], 3)})
    assert items == [1, 2, 3] and sorted(set(asked)) == [1, 2, 3]


def test_titan_read_concurrency_must_be_a_whole_number(titan, settings):
    titan()
    settings.TITAN_READ_CONCURRENCY = 0
    with pytest.raises(ConfigError, match="TITAN_READ_CONCURRENCY"):
        _titan_client(settings, 0)


@pytest.mark.django_db
def test_batches_recorded_together_are_all_or_nothing_and_counted_as_recorded(
    apex, tmp_path, monkeypatch, settings
):
    # The batches answered while the main thread was busy are recorded in one transaction;
    # a failure in it loses whole batches only, and the counts agree with what was kept.
    from integrations.apex import enroll
    from integrations.apex.enroll import apex_run_resume
    from integrations.jobs import job_execute

    settings.APEX_BATCH_SIZE = 10
    sim = apex()
    real = enroll._record_batch
    calls = {"n": 0}
    groups = []
    real_group = enroll._record_batches

    def spy(tracker, batches):
        groups.append(len(batches))
        return real_group(tracker, batches)

    def crash_at_the_sixth(tracker, batch, counts):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("database gone")
        real(tracker, batch, counts)

    monkeypatch.setattr(enroll, "_record_batches", spy)
    monkeypatch.setattr(enroll, "_record_batch", crash_at_the_sixth)
    run = run_file(write(tmp_path, grid(6, 20)))
    assert run.status == "failed"
    kept = run.items.count()
    assert kept % 10 == 0 and kept < 60
    # Nothing kept when the crash fell in the first group recorded (answers that come back
    # together are recorded together): then no request was counted either.
    assert run.counts.get("enrolled", 0) == kept
    assert run.counts.get("requests", 0) == kept // 10

    monkeypatch.setattr(enroll, "_record_batch", real)
    apex_run_resume(run_id=run.pk, triggered_by="test")
    run = job_execute(run.pk, send_report=False)
    assert run.status == "succeeded", run.message
    assert sorted(run.items.values_list("seq", flat=True)) == list(range(2, 122))
    assert sim.enrollment_count() == 120 + 3
    assert sum(groups) >= 12 and all(1 <= n <= enroll.RECORD_AT_ONCE for n in groups)


def test_starts_may_run_ahead_of_the_even_spacing_by_a_tenth_of_a_seconds_calls():
    clock = FakeTime()
    limiter = RateLimiter(250, sleep=clock.sleep, clock=clock.clock)
    # Four threads whose answers came back together start at once (25 would)...
    for _ in range(25):
        limiter.done(limiter.wait())
    assert clock.now == pytest.approx(0.0, abs=1e-9)
    # ...then the pacing holds again: the 26th waits one spacing.
    limiter.done(limiter.wait())
    assert clock.now == pytest.approx(1 / 250)


# Rates whose spacing is exact in binary: the fake clock adds the sleeps up, and with
# 1 / 250 a call exactly a second after another could land a rounding error inside it.
@pytest.mark.parametrize("rate", [256, 128, 32])
def test_running_ahead_never_puts_more_than_the_rate_in_a_second(rate):
    clock = FakeTime()
    limiter = RateLimiter(rate, sleep=clock.sleep, clock=clock.clock)
    ends = arrivals_of(limiter, clock, calls=5 * rate, duration=0.0)
    assert max_in_window(ends) <= rate
    # On average still the rate: 5 seconds' calls take at least about 5 seconds.
    assert ends[-1] >= (5 * rate - rate // 10) / rate - 1e-9


def test_below_ten_a_second_starts_stay_evenly_spaced():
    clock = FakeTime()
    limiter = RateLimiter(5, sleep=clock.sleep, clock=clock.clock)
    starts = []
    for _ in range(3):
        slot = limiter.wait()
        starts.append(clock.now)
        limiter.done(slot)
    assert starts == pytest.approx([0.0, 0.2, 0.4])
