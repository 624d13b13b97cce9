"""Answer slots: at most N answers compute at once in a process, the others wait their turn in order.

`threading.Semaphore` lets a thread that releases a slot take it straight back (it still holds the
GIL when it asks again, before the waiter it woke has run), so under load the same few threads keep
the slots while the rest starve: p95 grows with concurrency, and the questions reserved for the
embedding batcher (`qa_service.embed_batching`) by the waiting answers are not the ones that come up
next, so the batches stay single. Here a released slot is handed to the oldest waiter directly; a
newcomer queues behind it.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType


class AnswerSlots:
    """A first-come, first-served counting semaphore, used as a context manager."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("At least one answer slot is needed.")
        self._free = slots
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()

    def __enter__(self) -> AnswerSlots:
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return self
            turn = threading.Event()
            self._waiting.append(turn)
        turn.wait()  # set by `__exit__`, which hands its slot over: nothing to take
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._free += 1

    def waiting(self) -> int:
        """Answers waiting for a slot now."""
        with self._lock:
            return len(self._waiting)
