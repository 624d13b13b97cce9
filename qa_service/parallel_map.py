"""An ordered, bounded parallel map for work that releases the GIL (ONNX Runtime forward passes).

Measured on this project's 2-core machines: two single-threaded forward passes side by side embed
15-25 % more sentences a second than one pass on two intra-op threads (ONNX Runtime's pool wakes its
threads for every operator when spinning is off, and spinning would take the cores from the ranking
that follows a query's embedding).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class OrderedPool:
    """Runs `fn` over items on `workers` threads and yields the results in the items' order.

    At most `ahead` items (2 x workers by default) are submitted beyond the one the caller is reading,
    so a long input never holds every result in memory at once. The threads start on first use and
    live as long as the pool; `workers=1` runs everything in the caller's thread.
    """

    def __init__(self, workers: int, name: str = "qa-parallel", ahead: int | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._ahead = max(1, ahead if ahead is not None else 2 * workers)
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self._name)
            return self._executor

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """Results of `fn(item)` in order; the first exception is raised when its result is reached,
        and the items not yet started are then not run."""
        it = iter(items)
        if self.workers == 1:
            yield from map(fn, it)
            return
        pool = self._pool()
        pending: deque[Future[R]] = deque()
        try:
            for item in it:
                pending.append(pool.submit(fn, item))
                if len(pending) > self._ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an error or an abandoned generator: drop what has not started
                future.cancel()

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)
