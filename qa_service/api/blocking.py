"""Blocking calls awaited with a deadline: the event loop stops waiting, the worker thread finishes
on its own (a stalled database holds at most its pool's connections and the threads that wait on them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

from qa_service.errors import DatabaseUnavailableError

T = TypeVar("T")


async def bounded_wait(fn: Callable[..., T], *args: Any, seconds: float) -> T:
    """`fn(*args)` in a worker thread; past `seconds`, DatabaseUnavailableError (503) instead."""
    try:
        with anyio.fail_after(seconds):
            return await anyio.to_thread.run_sync(functools.partial(fn, *args), abandon_on_cancel=True)
    except TimeoutError as exc:
        raise DatabaseUnavailableError(f"No answer from the database within {seconds:g} s.") from exc
