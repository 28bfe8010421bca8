"""Streamed pages' writes, several to one transaction: the pulls' write batching.

    batches = WriteBatches()
    with Prefetch(pages) as items:
        for page in items:
            batches.begin()          # opens a transaction unless one is open
            store(page)              # in its own savepoint (transaction.atomic)
            batches.page_done()      # commits one open for BATCH_SECONDS
            batches.before_wait(items.ready)  # commits unless the next page is there soon
    batches.end()                    # commits what is open (or, given the error, rolls back)

A commit per page cost SQLite as much as the page's writes (WAL writes: measured on the
OpenClass 30k and the Canvas 50k benches), so pages share a transaction while the next
one is already there. Before waiting for the vendor's next page, the batch waits up to
`WAIT_OPEN_SECONDS` for it and commits if it has not come: the write lock is never held
longer than that while a vendor is slow, so a slow vendor still commits every page.
Committing as soon as the next page was not there yet made a commit for 182 of 300 pages
on the OpenClass 30k bench, most with the page a millisecond or two away.

A write that fails rolls back to its own savepoint; what the job does with the batch
around it (`end()` keeps the pages before it, `end(error)` drops the whole batch) is the
job's choice, and `committed` says whether anything was committed before.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from django.db import transaction

# Pages stored in one transaction at most this long.
BATCH_SECONDS = 0.5
# How long a batch stays open while the next page is on its way (then it is committed).
WAIT_OPEN_SECONDS = 0.05


class WriteBatches:
    """One open transaction at a time, committed by age, before a wait, or at the end.

    `timing`: a context manager factory around each commit (the OpenClass pull counts
    commits as its store's time, not the vendor's)."""

    def __init__(self, *, timing: Callable[[], AbstractContextManager] = nullcontext) -> None:
        self._timing = timing
        self._atomic: transaction.Atomic | None = None
        self._began = 0.0
        self.committed = False  # whether a batch was committed (pages stored for good)

    @property
    def open(self) -> bool:
        return self._atomic is not None

    def begin(self) -> None:
        if self._atomic is None:
            self._atomic = transaction.atomic()
            self._atomic.__enter__()
            self._began = time.monotonic()

    def page_done(self) -> None:
        if self._atomic is not None and time.monotonic() - self._began >= BATCH_SECONDS:
            self.end()

    def before_wait(self, ready: Callable[..., bool]) -> None:
        """Commit unless the next page is there within `WAIT_OPEN_SECONDS`; `ready(timeout=)`
        (`Prefetch.ready`) waits up to that long for it."""
        if self._atomic is None or ready(timeout=WAIT_OPEN_SECONDS):
            return
        self.end()

    def end(self, error: BaseException | None = None) -> None:
        """Commit what is open; given `error`, roll it back instead (to before `begin`)."""
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return
        with self._timing():
            if error is None:
                atomic.__exit__(None, None, None)
                self.committed = True
            else:
                atomic.__exit__(type(error), error, error.__traceback__)
