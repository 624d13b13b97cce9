"""A bound on generative answers in flight: each holds worker threads while the model writes (up to
QA_LLM_TIMEOUT_SECONDS), so past QA_LLM_MAX_CONCURRENT they are refused at once (503, Retry-After)
instead of queueing until every thread of the server is taken."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from qa_service.errors import QAServiceError


class GenerationBusyError(QAServiceError):
    code = "generation_busy"
    http_status = 503
    public_message = "Too many generative answers in progress; retry shortly, or ask for an extractive answer."

    def __init__(self, retry_after: int) -> None:
        super().__init__(self.public_message)
        self.headers = {"Retry-After": str(retry_after)}


class GenerationSlots:
    def __init__(self, size: int, retry_after: int) -> None:
        self.size, self.retry_after = size, retry_after
        self._in_use = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        """Raise GenerationBusyError if no slot is free now (a non-binding early answer for streams,
        which must be refused before their response starts)."""
        with self._lock:
            if self._in_use >= self.size:
                raise GenerationBusyError(self.retry_after)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One slot for the duration of a generative answer, or GenerationBusyError."""
        with self._lock:
            if self._in_use >= self.size:
                raise GenerationBusyError(self.retry_after)
            self._in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_use -= 1
