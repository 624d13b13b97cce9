"""The question log on both backends: recorded by `converse`, rated through the conversation store's
feedback, pruned after its retention, and the reports over it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qa_service.admin_reports import Period, analytics, content_gaps, percentile, reviews
from qa_service.chat import converse
from qa_service.contract import Answer, Citation
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings
from qa_service.shared_state import SharedState, open_state
from tests.conftest import NEVER_ABSTAIN


def _answer(abstained: bool = False, text: str = "Otters hold hands. [1]") -> Answer:
    citations = (
        []
        if abstained
        else [
            Citation(
                index=1,
                document_id="d1",
                source="o.txt",
                text="Otters hold hands.",
                start=0,
                end=18,
                score=1.0,
                location="slide 2",
            )
        ]
    )
    return Answer(answer=text, abstained=abstained, confidence=0.1 if abstained else 0.9, citations=citations)


@pytest.fixture(params=["faiss", "pgvector"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedState]:
    url = request.getfixturevalue("database_url") if request.param == "pgvector" else None
    settings = Settings(index_dir=tmp_path / "index", store=request.param, database_url=url, question_log_days=30)
    state = open_state(settings)
    assert state.questions is not None
    yield state
    state.close()


def test_records_rates_and_reviews(shared: SharedState) -> None:
    log, conversations = shared.questions, shared.conversations
    assert log is not None
    before = time.time() - 1
    for n, (question, answer) in enumerate(
        [("Do otters hold hands?", _answer()), ("Capital of France?", _answer(True))]
    ):
        cid = f"c{n}"
        _, turn = conversations.append(cid, *_turns(question, answer))
        log.record(cid, turn, question, answer, latency_ms=100.0 * (n + 1))
    asked = log.questions(before, time.time() + 1)
    assert [q.question for q in asked] == ["Capital of France?", "Do otters hold hands?"]  # newest first
    assert asked[0].abstained and not asked[1].abstained and asked[1].latency_ms == 100.0 and asked[1].turn == 2
    assert [q.question for q in log.questions(before, time.time() + 1, abstained_only=True)] == ["Capital of France?"]

    conversations.add_feedback("c0", 2, "up", None)
    conversations.add_feedback("c0", 2, "down", "wrong <b>source</b>")  # changed their mind: the latest counts
    conversations.add_feedback("c1", 2, "up", None)
    ratings = sorted(r for _, r in log.ratings(before, time.time() + 1))
    assert ratings == ["down", "up"]
    [review] = log.thumbs_down(before, time.time() + 1, limit=10)
    assert (review.question, review.comment, review.turn) == ("Do otters hold hands?", "wrong <b>source</b>", 2)
    assert review.answer.citations[0].location == "slide 2"

    report = analytics(log, Period.last_days(7))
    assert (report.questions, report.abstained, report.abstention_rate) == (2, 1, 0.5)
    assert (report.up, report.down, report.p50_ms, report.p95_ms) == (1, 1, 100.0, 200.0)
    assert len(report.days) == 7 and report.days[-1].questions == 2 and report.days[0].questions == 0

    assert log.prune(time.time() + 10) == 2 and log.questions(before, time.time() + 1) == []


def _turns(question: str, answer: Answer):  # type: ignore[no-untyped-def]
    from qa_service.contract import Turn

    return Turn(role="user", content=question), Turn(role="assistant", content=answer.answer, answer=answer)


def test_converse_records_every_answer(fake_settings: Settings) -> None:
    settings = fake_settings.model_copy(update={"abstention": NEVER_ABSTAIN})
    service = QAService(settings)
    service.index_texts([TextSource("o.txt", "Sea otters hold hands while they sleep.")])
    state = open_state(settings)
    assert state.questions is not None
    first = converse(service, state.conversations, "Do otters hold hands?", questions=state.questions)
    converse(service, state.conversations, "And when?", first.conversation_id, questions=state.questions)
    logged = state.questions.questions(0, time.time() + 1)
    assert [(q.question, q.conversation_id, q.turn) for q in logged] == [
        ("And when?", first.conversation_id, 4),
        ("Do otters hold hands?", first.conversation_id, 2),
    ]
    assert all(q.latency_ms > 0 and 0 <= q.confidence <= 1 for q in logged)
    state.close()
    service.store.close()


def test_a_failing_log_never_fails_the_answer(shared: SharedState, monkeypatch: pytest.MonkeyPatch) -> None:
    log = shared.questions
    assert log is not None

    def broken(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(log, "_insert", broken)
    log.record("c", 2, "q", _answer(), 1.0)  # logged as a warning, not raised


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (50.0, 95.0, 100.0)


def test_period_days_are_the_viewers() -> None:
    now = 1_700_000_000.0  # 2023-11-14 22:13 UTC
    assert Period.last_days(1, 0, now).days() == [int(now // 86400)]
    ahead = Period.last_days(1, 120, now)  # UTC+2: already the 15th
    assert ahead.days() == [int((now + 7200) // 86400)] and ahead.since == (now + 7200) // 86400 * 86400 - 7200


class _FakeLog:
    """Just what content_gaps reads."""

    def __init__(self, questions: list[str]) -> None:
        from qa_service.question_log import LoggedQuestion

        self.rows = [LoggedQuestion(1000.0 - k, "c", 2, q, True, 0.1, 5.0) for k, q in enumerate(questions)]

    def questions(self, since: float, until: float, abstained_only: bool = False, limit: int | None = None):  # type: ignore[no-untyped-def]
        return self.rows


def test_content_gaps_group_by_similarity_biggest_first() -> None:
    asked = [
        "What is the parental leave policy?",
        "what is the parental leave policy",  # the same wording: one key
        "How long is parental leave?",
        "Where do I park my bike?",
        "What is the parental leave policy?",
    ]
    topics = {"leave": np.array([1.0, 0.0]), "bike": np.array([0.0, 1.0])}

    def embed(texts: list[str]) -> np.ndarray:
        return np.stack([topics["leave" if "leave" in t else "bike"] for t in texts])

    groups = content_gaps(_FakeLog(asked), Period(0, 2000), embed)  # type: ignore[arg-type]
    assert [(g.question, g.count) for g in groups] == [
        ("What is the parental leave policy?", 4),
        ("Where do I park my bike?", 1),
    ]
    assert groups[0].examples == ["How long is parental leave?"] and groups[0].last_asked_at == 1000.0


def test_reviews_are_the_thumbs_down(shared: SharedState) -> None:
    log = shared.questions
    assert log is not None
    shared.conversations.append("c9", *_turns("Q?", _answer()))
    log.record("c9", 2, "Q?", _answer(), 3.0)
    shared.conversations.add_feedback("c9", 2, "down", None)
    assert [r.question for r in reviews(log, Period.last_days(1))] == ["Q?"]
