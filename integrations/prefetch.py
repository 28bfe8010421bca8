"""Fetch the next page in a background thread while the job stores the last one.

    with Prefetch(client.iter_progression_pages(class_id, size), name="openclass") as pages:
        for page in pages:
            store(page)  # meanwhile, the next page is being fetched and decoded

Exactly one item ahead: the thread asks for item N+1 once the job has taken item N, and
waits for N+1 to be taken before asking for N+2, so memory stays at two pages however
long the list. The thread only runs the iterator (HTTP and decoding, which mostly waits on
the network with the GIL released); the database connection stays on the job's thread.

Whatever the iterator raises (a `VendorError` on page N, an `AuthError`, a bug) is raised
to the job by `next()` after the items before it, as the same exception object, so the job
sees the error exactly as it would without the thread and at the same point. Leaving the
block early (the job failed to store a page) stops the thread after the request it may
have in flight; nothing waits for it. The thread runs in a copy of the job's context, so
its log lines carry the run (integrations.logs.job_log_context).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterable, Iterator
from typing import Any

_END = object()


class _Handoff:
    """One slot between the thread (put, which waits until taken) and the job (take)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._full = False
        self._item: Any = None
        self._failed = False
        self.closed = False

    def put(self, item: Any, *, failed: bool = False) -> bool:
        """Hand over an item; wait until it is taken. False when the job has stopped."""
        with self._cond:
            if self.closed:
                return False
            self._item, self._failed, self._full = item, failed, True
            self._cond.notify_all()
            while self._full and not self.closed:
                self._cond.wait()
            return not self.closed

    def take(self) -> tuple[Any, bool]:
        with self._cond:
            while not self._full:
                self._cond.wait()
            item, failed = self._item, self._failed
            self._item, self._full = None, False
            self._cond.notify_all()
            return item, failed

    @property
    def full(self) -> bool:
        return self._full

    def wait_full(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for an item (or the job's stop); whether one is there."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self.closed, timeout)
            return self._full

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._item, self._full = None, False
            self._cond.notify_all()


class Prefetch[T]:
    """Iterate `items` one item ahead in a background thread (see the module doc)."""

    def __init__(self, items: Iterable[T], *, name: str = "prefetch") -> None:
        self._items = items
        self._name = name
        self._handoff = _Handoff()
        self._thread: threading.Thread | None = None
        self._done = False

    def __enter__(self) -> Prefetch[T]:
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._produce,), name=self._name, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the next item (or the error, or the end) is there to take, waiting up to
        `timeout` seconds for it."""
        if timeout <= 0 or self._handoff.full:
            return self._handoff.full
        return self._handoff.wait_full(timeout)

    def close(self) -> None:
        """Stop the thread (after the request it may have in flight); does not wait."""
        self._done = True
        self._handoff.close()

    def _produce(self) -> None:
        handoff = self._handoff
        try:
            for item in self._items:
                if not handoff.put(item):
                    return
        except BaseException as exc:
            handoff.put(exc, failed=True)
            return
        handoff.put(_END)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._thread is None:
            raise RuntimeError("use Prefetch in a with block")
        if self._done:
            raise StopIteration
        item, failed = self._handoff.take()
        if failed:
            self.close()
            raise item
        if item is _END:
            self.close()
            raise StopIteration
        return item
