"""Answer admission: how many of a process's requests hold a worker thread for their answer.

An answer runs in a worker thread (the service is synchronous), and at most
`QA_MAX_CONCURRENT_ANSWERS` compute at once (`qa_service.answer_slots`); the rest wait. Waiting in a
thread is free of CPU, but every thread that wakes (a slot handed over, a database write done, a
response to build) competes for the process's GIL and cores with the answers computing. At
concurrency 32 with two workers on two cores, each worker held 16 threads, and the event loop's
Python work per request rose from 2.4 to 5.5 ms (py-spy, GIL held, including while descheduled):
throughput fell 6-21 % below that at concurrency 8.

Here a request takes a thread only once admitted: at most `QA_ANSWER_THREADS` (default four per
answer slot) are, in order of arrival, and the rest wait in the event loop as coroutines, which cost
nothing. Admitted questions still meet in forward passes: those waiting for a slot are reserved for
the embedding batcher (`qa_service.embed_batching`), and batches of 4-8 questions already cost the
least a question (a batch of 16 costs more a question than one of 8: padding and cache). Streamed
answers, MCP tool calls and Slack events run on threads of their own and are bounded by the answer
slots alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class AnswerAdmission:
    """Runs answer calls in worker threads, at most `threads` at once, first come first served."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError("At least one answer thread is needed.")
        self.threads = threads
        self._limiter = anyio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in a worker thread, once one of the `threads` places is free."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self._limiter)

    def waiting(self) -> int:
        """Requests waiting for a place now."""
        return int(self._limiter.statistics().tasks_waiting)

    def running(self) -> int:
        """Answer calls holding a place now."""
        return int(self._limiter.borrowed_tokens)
