"""Micro-batching of query embeddings: concurrent callers share forward passes and get their own rows.

Callers gather only while another forward pass runs; the tests hold that pass with a gate, and close
batches by filling them (`max_batch`) under a window far longer than any test, so how many passes
run does not depend on timing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from qa_service.embed_batching import EmbedBatcher, batcher_for
from qa_service.encoders import HashingEncoder
from qa_service.pipeline.builders import query_embedder
from qa_service.pipeline.embedders import QueryEmbedder
from qa_service.service import QAService
from qa_service.settings import Settings

LONG_WINDOW_MS = 60_000.0  # a batch closes when full, never by the clock
QUESTIONS = [f"Question number {n} about the {w} river?" for n, w in enumerate("abcdefgh" * 2)]


class CountingEncoder(HashingEncoder):
    """The hashing encoder, recording each forward pass's texts; `fail_on` raises in a pass holding it;
    `gate`, when given, holds every pass until it is set."""

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None) -> None:
        super().__init__(32)
        self.passes: list[list[str]] = []
        self.fail_on, self.gate = fail_on, gate
        self._lock = threading.Lock()

    def embed_tokens(self, texts: list[str], batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            self.passes.append(list(texts))
        if self.gate is not None:
            assert self.gate.wait(30), "the test's gate was never opened"
        if self.fail_on in texts:
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        return super().embed_tokens(texts, batch_size)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the callers never reached their forward passes"
        time.sleep(0.001)


def _while_a_pass_runs(
    texts: list[str], max_batch: int, fail_on: str | None = None
) -> tuple[CountingEncoder, EmbedBatcher, list[Future[tuple[np.ndarray, np.ndarray]]]]:
    """`texts` embedded by concurrent callers while another question's forward pass runs (held by a
    gate until every batch, closed by filling it, is in its own pass)."""
    gate = threading.Event()
    encoder = CountingEncoder(fail_on=fail_on, gate=gate)
    batcher = EmbedBatcher(encoder, window_ms=LONG_WINDOW_MS, max_batch=max_batch)
    with ThreadPoolExecutor(max_workers=len(texts) + 1) as pool:
        blocker = pool.submit(batcher.embed, "Who is already being embedded?")
        _wait_for(lambda: len(encoder.passes) == 1)
        futures = [pool.submit(batcher.embed, t) for t in texts]
        _wait_for(lambda: len(encoder.passes) == 1 + len(texts) // max_batch)
        gate.set()
        _assert_same(blocker.result(timeout=60), "Who is already being embedded?")
        for f in futures:
            f.exception(timeout=60)
    return encoder, batcher, futures


def _assert_same(got: tuple[np.ndarray, np.ndarray], text: str) -> None:
    tokens, pooled = HashingEncoder(32).embed_tokens([text])[0]
    np.testing.assert_allclose(got[0], tokens, atol=1e-6)
    np.testing.assert_allclose(got[1], pooled, atol=1e-6)


def test_concurrent_callers_share_passes_and_get_their_own_vectors() -> None:
    encoder, batcher, futures = _while_a_pass_runs(QUESTIONS[:8], max_batch=4)
    for text, future in zip(QUESTIONS[:8], futures, strict=True):
        _assert_same(future.result(), text)
    assert [len(p) for p in encoder.passes] == [1, 4, 4]
    assert sorted(t for p in encoder.passes[1:] for t in p) == sorted(QUESTIONS[:8])
    assert (batcher.forward_passes, batcher.texts_embedded) == (3, 9)


def test_window_zero_embeds_each_question_alone() -> None:
    encoder = CountingEncoder()
    batcher = EmbedBatcher(encoder, window_ms=0, max_batch=4)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(batcher.embed, QUESTIONS[:6], timeout=60))
    for text, got in zip(QUESTIONS[:6], results, strict=True):
        _assert_same(got, text)
    assert sorted(encoder.passes) == sorted([q] for q in QUESTIONS[:6])


def test_a_question_finding_the_encoder_idle_does_not_wait_for_the_window() -> None:
    """One caller at a time: each is embedded at once (a 60 s window would otherwise hold the test)."""
    encoder = CountingEncoder()
    batcher = EmbedBatcher(encoder, window_ms=LONG_WINDOW_MS)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for text in ("Only me?", "Me again?"):
            _assert_same(pool.submit(batcher.embed, text).result(timeout=30), text)
    assert encoder.passes == [["Only me?"], ["Me again?"]]


def test_an_error_in_the_pass_reaches_every_caller_of_the_batch() -> None:
    encoder, _batcher, futures = _while_a_pass_runs(QUESTIONS[:3], max_batch=3, fail_on=QUESTIONS[1])
    errors = [f.exception() for f in futures]
    assert all(isinstance(e, RuntimeError) and "cannot embed" in str(e) for e in errors), errors
    assert [len(p) for p in encoder.passes] == [1, 3]  # the blocker (answered) and the failing batch


def test_invalid_parameters_and_shared_batchers() -> None:
    with pytest.raises(ValueError):
        EmbedBatcher(HashingEncoder(8), window_ms=-1)
    encoder = HashingEncoder(8)
    assert batcher_for(encoder, 2.0) is batcher_for(encoder, 2.0)
    assert batcher_for(encoder, 2.0) is not batcher_for(encoder, 3.0)


def test_query_embedder_uses_the_batcher_and_round_trips_its_window() -> None:
    embedder = QueryEmbedder("hash:32", batch_window_ms=LONG_WINDOW_MS)
    embedder.warm_up()
    assert embedder._batcher is batcher_for(embedder._encoder, LONG_WINDOW_MS)  # type: ignore[arg-type]
    counting = CountingEncoder()
    embedder._batcher = EmbedBatcher(counting, window_ms=LONG_WINDOW_MS)
    out = embedder.run(text=QUESTIONS[0])
    _assert_same((out["tokens"], out["vector"]), QUESTIONS[0])
    assert out["embedding"] == out["vector"].tolist() and counting.passes == [[QUESTIONS[0]]]
    again = QueryEmbedder.from_dict(embedder.to_dict())
    assert again.batch_window_ms == LONG_WINDOW_MS and again.model == "hash:32"
    unbatched = QueryEmbedder("hash:32")
    unbatched.warm_up()
    assert unbatched._batcher is None and unbatched.batch_window_ms == 0


def test_the_setting_reaches_the_query_pipeline(fake_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().embed_batch_window_ms == 2.0
    service = QAService(fake_settings)
    assert service._query.pipeline.get_component("query_embedder").batch_window_ms == 2.0
    monkeypatch.setenv("QA_EMBED_BATCH_WINDOW_MS", "0")
    assert Settings().embed_batch_window_ms == 0
    off = QAService(fake_settings.model_copy(update={"embed_batch_window_ms": 0.0}))
    assert off._query.pipeline.get_component("query_embedder").batch_window_ms == 0


def test_reserved_questions_ride_along_with_the_next_pass_oldest_first() -> None:
    encoder = CountingEncoder()
    batcher = EmbedBatcher(encoder, window_ms=2.0, max_batch=4)
    reservations = [batcher.reserve(q) for q in QUESTIONS[:5]]
    _assert_same(batcher.embed(QUESTIONS[2], reservations[2]), QUESTIONS[2])
    assert encoder.passes == [[QUESTIONS[2], QUESTIONS[0], QUESTIONS[1], QUESTIONS[3]]]
    for i in (0, 1, 3):  # embedded already: no pass of their own
        _assert_same(batcher.embed(QUESTIONS[i], reservations[i]), QUESTIONS[i])
        batcher.withdraw(reservations[i])  # taken: nothing to withdraw, and no error
    assert len(encoder.passes) == 1
    _assert_same(batcher.embed(QUESTIONS[4], reservations[4]), QUESTIONS[4])
    assert encoder.passes[1:] == [[QUESTIONS[4]]]
    with pytest.raises(ValueError, match="another text"):
        batcher.embed("Something else?", batcher.reserve(QUESTIONS[5]))


def test_a_withdrawn_reservation_is_left_out_and_batching_off_reserves_nothing() -> None:
    encoder = CountingEncoder()
    batcher = EmbedBatcher(encoder, window_ms=2.0)
    gone, kept = batcher.reserve(QUESTIONS[0]), batcher.reserve(QUESTIONS[1])
    batcher.withdraw(gone)
    batcher.embed(QUESTIONS[1], kept)
    assert encoder.passes == [[QUESTIONS[1]]]
    off = CountingEncoder()
    unbatched = EmbedBatcher(off, window_ms=0)
    first, second = unbatched.reserve(QUESTIONS[0]), unbatched.reserve(QUESTIONS[1])
    _assert_same(unbatched.embed(QUESTIONS[1], second), QUESTIONS[1])
    _assert_same(unbatched.embed(QUESTIONS[0], first), QUESTIONS[0])
    assert off.passes == [[QUESTIONS[1]], [QUESTIONS[0]]]


def test_a_reservation_taken_by_a_running_pass_waits_for_it_and_shares_its_error() -> None:
    gate = threading.Event()
    encoder = CountingEncoder(gate=gate)
    batcher = EmbedBatcher(encoder, window_ms=2.0)
    mine, theirs = batcher.reserve(QUESTIONS[0]), batcher.reserve(QUESTIONS[1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(batcher.embed, QUESTIONS[1], theirs)
        _wait_for(lambda: len(encoder.passes) == 1)  # their pass holds my question too
        waiting = pool.submit(batcher.embed, QUESTIONS[0], mine)
        time.sleep(0.05)
        assert not waiting.done() and len(encoder.passes) == 1
        gate.set()
        _assert_same(waiting.result(timeout=30), QUESTIONS[0])
        _assert_same(running.result(timeout=30), QUESTIONS[1])
    failing = CountingEncoder(fail_on=QUESTIONS[3])
    batcher = EmbedBatcher(failing, window_ms=2.0)
    a, b = batcher.reserve(QUESTIONS[2]), batcher.reserve(QUESTIONS[3])
    with pytest.raises(RuntimeError, match="cannot embed"):
        batcher.embed(QUESTIONS[2], a)
    with pytest.raises(RuntimeError, match="cannot embed"):
        batcher.embed(QUESTIONS[3], b)
    assert failing.passes == [[QUESTIONS[2], QUESTIONS[3]]]


def test_answers_queued_for_a_slot_are_embedded_in_one_pass(fake_settings: Settings, seeds_copy: Path) -> None:
    """The first answer to get the slot embeds every queued question; the answers are those given alone."""
    service = QAService(fake_settings.model_copy(update={"max_concurrent_answers": 1}))
    service.index_paths([seeds_copy])
    questions = ["How many troops withdrew from Kherson?", "Who announced the withdrawal?", "When did it start?"]
    alone = {q: service.ask(q) for q in questions}
    batcher = query_embedder(service._query.pipeline)._batcher
    assert batcher is not None
    passes, texts = batcher.forward_passes, batcher.texts_embedded
    answers: dict[str, object] = {}
    with service._answer_slots:  # the test holds the only slot while the answers queue
        threads = [threading.Thread(target=lambda q=q: answers.__setitem__(q, service.ask(q))) for q in questions]
        for t in threads:
            t.start()
        _wait_for(lambda: service._answer_slots.waiting() == len(questions))
    for t in threads:
        t.join(30)
    assert (batcher.forward_passes - passes, batcher.texts_embedded - texts) == (1, len(questions))
    assert answers == alone
