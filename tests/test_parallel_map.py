"""`OrderedPool`: results in order, a bounded number of items in flight, errors raised in place."""

from __future__ import annotations

import threading
import time

import pytest

from qa_service.parallel_map import OrderedPool, available_cores


def test_results_come_in_the_items_order_from_several_threads() -> None:
    pool = OrderedPool(3)
    names: set[str] = set()

    def slow_square(x: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(0.002 * (x % 3))  # later items often finish first
        return x * x

    try:
        assert list(pool.map(slow_square, range(30))) == [x * x for x in range(30)]
    finally:
        pool.close()
    assert len(names) > 1 and all(name.startswith("qa-parallel") for name in names)


def test_one_worker_runs_in_the_callers_thread() -> None:
    names = []
    results = list(OrderedPool(1).map(lambda x: names.append(threading.current_thread().name) or x + 1, [1, 2]))
    assert results == [2, 3] and set(names) == {threading.current_thread().name}


def test_at_most_ahead_items_are_submitted_beyond_the_one_being_read() -> None:
    started: list[int] = []
    pool = OrderedPool(2, ahead=3)

    def record(x: int) -> int:
        started.append(x)
        return x

    try:
        results = pool.map(record, iter(range(100)))
        assert next(results) == 0
        time.sleep(0.05)
        assert len(started) <= 1 + 3 + 1, started  # the one read, `ahead` more, and the one just submitted
        assert list(results) == list(range(1, 100))
    finally:
        pool.close()


def test_an_error_is_raised_at_its_item_and_later_items_are_not_started() -> None:
    pool = OrderedPool(2, ahead=2)
    started: list[int] = []

    def work(x: int) -> int:
        started.append(x)
        if x == 1:
            raise ValueError("bad item 1")
        return x

    try:
        results = pool.map(work, range(50))
        assert next(results) == 0
        with pytest.raises(ValueError, match="bad item 1"):
            next(results)
        time.sleep(0.05)
        assert max(started) < 10, started  # the rest were cancelled, not run
    finally:
        pool.close()


def test_workers_must_be_positive_and_cores_are_counted() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        OrderedPool(0)
    assert available_cores() >= 1
