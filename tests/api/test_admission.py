"""Answer admission: at most QA_ANSWER_THREADS answers of a process hold a worker thread; the rest
wait in the event loop, first come first served (qa_service/api/admission.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest

from qa_service.api import admission as admission_module
from qa_service.api.admission import AnswerAdmission
from qa_service.api.app import create_app
from qa_service.api.routes import chat as chat_routes
from qa_service.api.routes import openai_compat
from qa_service.settings import Settings
from tests.api.conftest import ADMIN_HEADERS
from tests.conftest import serve_in_thread


class Gate:
    """A blocking call that records how many run at once and in which order they started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = 0
        self.started: list[Any] = []
        self.release = threading.Event()  # lets every call finish
        self.each: dict[Any, threading.Event] = {}  # or: lets the call with this tag finish

    def __call__(self, tag: Any, fail: bool = False) -> Any:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(tag)
        try:
            assert self.each.get(tag, self.release).wait(10)
            if fail:
                raise ValueError(f"failed {tag}")
            return tag
        finally:
            with self.lock:
                self.active -= 1


def test_at_most_threads_run_and_the_rest_wait_in_order() -> None:
    gate = Gate()
    gate.each = {i: threading.Event() for i in range(6)}
    admission = AnswerAdmission(2)
    results: list[Any] = []
    seen: dict[str, int] = {}

    async def main() -> None:
        async def one(i: int) -> None:
            try:
                results.append(await admission.run(gate, i, fail=i == 3))
            except ValueError as exc:
                results.append(str(exc))

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
                await anyio.sleep(0.01)  # arrival order
            while gate.active < 2:
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)
            seen.update(running=admission.running(), waiting=admission.waiting(), started=len(gate.started))
            # Finish the calls one at a time, each after the previous freed place was taken: the
            # order in which waiting calls start is then the limiter's alone (released together,
            # two threads could record their starts in either order).
            with anyio.fail_after(10):
                for i in range(6):
                    gate.each[i].set()
                    while len(gate.started) < min(i + 3, 6):
                        await anyio.sleep(0.005)

    anyio.run(main)
    assert seen == {"running": 2, "waiting": 4, "started": 2}
    assert gate.peak == 2
    assert gate.started == [0, 1, 2, 3, 4, 5]  # first come, first served
    assert sorted(map(str, results)) == sorted(["0", "1", "2", "failed 3", "4", "5"])  # errors reach their caller
    with pytest.raises(ValueError, match="At least one"):
        AnswerAdmission(0)


def test_answer_threads_default_to_four_per_answer_slot() -> None:
    assert Settings(max_concurrent_answers=3).answer_thread_limit() == 12
    assert Settings(max_concurrent_answers=3, answer_threads=5).answer_thread_limit() == 5
    assert admission_module.AnswerAdmission(Settings(max_concurrent_answers=1).answer_thread_limit()).threads == 4
    copied = Settings(max_concurrent_answers=3).model_copy(update={"max_concurrent_answers": 1})
    assert copied.answer_thread_limit() == 4  # derived from the copy's slots, not left at the original's


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Both answer routes' `converse` replaced by a gate that answers with the real one once released."""
    gate = Gate()
    for module in (chat_routes, openai_compat):
        real = module.converse

        def gated_converse(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            gate(kwargs.get("channel", "web"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "converse", gated_converse)
    yield gate
    gate.release.set()


def test_chat_routes_hold_at_most_answer_threads(api_settings: Settings, gated: Gate) -> None:
    app = create_app(api_settings.model_copy(update={"answer_threads": 2}))
    requests = [("/v1/chat", {"message": "How many troops withdrew from Kherson?"})] * 3 + [
        ("/v1/chat/completions", {"model": "qa-service", "messages": [{"role": "user", "content": "Who withdrew?"}]})
    ] * 3
    with serve_in_thread(app) as url, ThreadPoolExecutor(6) as pool:

        def post(path_body: tuple[str, dict[str, Any]]) -> int:
            return httpx.post(url + path_body[0], json=path_body[1], headers=ADMIN_HEADERS, timeout=30).status_code

        futures = [pool.submit(post, r) for r in requests]
        deadline = time.monotonic() + 10
        while (app.state.admission.waiting() < 4 or gated.active < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (gated.active, app.state.admission.running(), app.state.admission.waiting()) == (2, 2, 4)
        gated.release.set()
        assert [f.result() for f in futures] == [200] * 6
    assert gated.peak == 2
