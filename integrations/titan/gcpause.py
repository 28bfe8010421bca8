"""`gc_paused()`: the cyclic garbage collector off while a Titan plan is read and computed.

Reading Titan's state and the roster builds a few hundred thousand long-lived objects
(decoded pages, users, role lists, roster rows, the plan's indexes), none of them in a
reference cycle. Each of CPython's full collections walks every live object, and a growing
heap triggers one each time it grows by a quarter, so on a 100,000-membership preview the
collector walked the same objects again and again (7 or 8 full collections; the job's CPU
went from 10.1 s to 8.3 s with it off: docs/benchmarks.md "Titan planning, this round").
Reference counting still frees everything as usual while the collector is off; only
cycles wait, and the collector runs again when the last pause ends.

Pauses nest and may overlap across threads (two previews in one process): the collector
comes back when the last one ends, and only if it was on when the first began.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
