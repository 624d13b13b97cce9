"""Answer slots: at most N holders, and a released slot goes to the oldest waiter, never to a newcomer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from qa_service.answer_slots import AnswerSlots


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the threads never got there"
        time.sleep(0.001)


def test_waiters_get_the_slot_in_arrival_order_and_newcomers_queue_behind() -> None:
    slots = AnswerSlots(1)
    order: list[str] = []
    release = {name: threading.Event() for name in "abcn"}

    def hold(name: str) -> None:
        with slots:
            order.append(name)
            assert release[name].wait(30)

    slots.__enter__()  # the test holds the only slot
    threads = {}
    for i, name in enumerate("abc"):
        threads[name] = threading.Thread(target=hold, args=(name,))
        threads[name].start()
        _wait_for(lambda i=i: slots.waiting() == i + 1)  # a queued before b, b before c
    slots.__exit__(None, None, None)  # handed to a: free stays 0
    _wait_for(lambda: order == ["a"])
    threads["n"] = threading.Thread(target=hold, args=("n",))  # arrives while b and c wait
    threads["n"].start()
    _wait_for(lambda: slots.waiting() == 3)
    for name in "abcn":
        release[name].set()
        threads[name].join(30)
    assert order == ["a", "b", "c", "n"]
    assert slots.waiting() == 0


def test_no_more_than_the_slots_at_once_and_all_served() -> None:
    slots = AnswerSlots(3)
    active = peak = done = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal active, peak, done
        with slots:
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.005)
            with lock:
                active -= 1
                done += 1

    threads = [threading.Thread(target=work) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (peak, done, slots.waiting()) == (3, 24, 0)


def test_an_exception_inside_releases_the_slot() -> None:
    slots = AnswerSlots(1)
    with pytest.raises(RuntimeError), slots:
        raise RuntimeError("answer failed")
    got = threading.Event()

    def take() -> None:
        with slots:
            got.set()

    t = threading.Thread(target=take)
    t.start()
    t.join(30)
    assert got.is_set()
    with pytest.raises(ValueError):
        AnswerSlots(0)
