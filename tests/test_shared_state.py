"""Conversations, feedback, rate limits and Slack event ids on both backends; on PostgreSQL two
`SharedState`s over one database stand for two replicas."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.api.security import RateLimitedError
from qa_service.contract import Answer, Citation, Turn
from qa_service.errors import NotFoundError
from qa_service.settings import Settings
from qa_service.shared_state import SharedState, open_state
from qa_service.store.postgres.pool import Postgres

ANSWER = Answer(
    answer="It opened in 1937. [1]",
    abstained=False,
    confidence=0.9,
    citations=[Citation(index=1, document_id="d", source="b.txt", text="It opened in 1937.", start=0, end=18, score=1)],
)


def settings_for(backend: str, tmp_path: Path, url: str | None, **extra: object) -> Settings:
    return Settings(index_dir=tmp_path, store=backend, database_url=url, **extra)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    backend = "pgvector" if url else "faiss"
    made: list[SharedState] = []

    def make(**extra: object) -> SharedState:
        state = open_state(settings_for(backend, tmp_path, url, **extra))
        made.append(state)
        return state

    yield make
    for state in made:
        state.close()


def test_conversation_round_trip_and_feedback(make_state) -> None:  # type: ignore[no-untyped-def]
    one, other = make_state(), make_state()  # on PostgreSQL: two replicas
    conversations = one.conversations
    assert conversations.append(
        "c1", Turn(role="user", content="When?"), Turn(role="assistant", content="1937", answer=ANSWER)
    ) == [1, 2]
    assert other.conversations.append("c1", Turn(role="user", content="Where?")) == [3]
    stored = other.conversations.get("c1")
    assert stored is not None and [t.turn for t in stored.turns] == [1, 2, 3]
    assert stored.turns[1].answer == ANSWER and stored.turns[0].role == "user"
    assert [t.content for t in conversations.history("c1")] == ["When?", "1937", "Where?"]
    assert other.conversations.add_feedback("c1", 2, "up", "good") > 0
    assert conversations.feedback("c1") == [
        {"turn": 2, "rating": "up", "comment": "good", "created_at": conversations.feedback("c1")[0]["created_at"]}
    ]
    with pytest.raises(NotFoundError):
        conversations.add_feedback("c1", 1, "up", None)  # a user turn
    with pytest.raises(NotFoundError):
        conversations.add_feedback("nope", 2, "up", None)
    assert conversations.get("nope") is None and conversations.history("nope") == []


def test_turns_are_numbered_without_gaps_under_concurrent_appends(make_state) -> None:  # type: ignore[no-untyped-def]
    states = [make_state(), make_state()]

    def talk(state: SharedState) -> None:
        for i in range(10):
            state.conversations.append("busy", Turn(role="user", content=f"q{i}"))

    threads = [threading.Thread(target=talk, args=(s,)) for s in states for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = states[0].conversations.get("busy")
    assert stored is not None and [t.turn for t in stored.turns] == list(range(1, 41))


def test_conversations_expire_and_keep_the_last_turns(make_state) -> None:  # type: ignore[no-untyped-def]
    state = make_state()
    state.conversations.max_turns = 3
    state.conversations.append("long", *[Turn(role="user", content=str(i)) for i in range(5)])
    assert [t.content for t in state.conversations.history("long")] == ["2", "3", "4"]
    state.conversations.ttl = 0.05
    time.sleep(0.2)
    assert state.conversations.get("long") is None


def test_rate_limit_is_shared_and_refills(make_state) -> None:  # type: ignore[no-untyped-def]
    one = make_state(rate_limit_per_minute=60, rate_limit_burst=2)
    one.limiter.hit("client")
    one.limiter.hit("client")
    with pytest.raises(RateLimitedError) as exc:
        one.limiter.hit("client")
    assert exc.value.headers == {"Retry-After": "1"}
    one.limiter.hit("another client")
    time.sleep(1.1)
    one.limiter.hit("client")  # one token back after a second at 60/min


def test_postgres_replicas_share_rate_limits_and_slack_events(tmp_path: Path, database_url: str) -> None:
    replicas = [open_state(settings_for("pgvector", tmp_path, database_url, rate_limit_burst=3)) for _ in range(2)]
    a, b = replicas
    a.limiter.hit("k")
    b.limiter.hit("k")
    a.limiter.hit("k")
    with pytest.raises(RateLimitedError):
        b.limiter.hit("k")  # the bucket is the client's, whichever replica it reaches
    assert a.slack_events.first_time("Ev1") and not b.slack_events.first_time("Ev1")
    assert b.slack_events.first_time("Ev2")
    Postgres.close_shared(database_url)


def test_a_conversation_belongs_to_its_channel(make_state) -> None:  # type: ignore[no-untyped-def]
    conversations = make_state().conversations
    conversations.append("slack-C1-1700000000.1", Turn(role="user", content="Private?"), channel="slack")
    assert conversations.get("slack-C1-1700000000.1", channel="web") is None
    assert conversations.history("slack-C1-1700000000.1", channel="web") == []
    with pytest.raises(NotFoundError):
        conversations.append("slack-C1-1700000000.1", Turn(role="user", content="Appended?"), channel="web")
    with pytest.raises(NotFoundError):
        conversations.add_feedback("slack-C1-1700000000.1", 1, "up", None, channel="web")
    stored = conversations.get("slack-C1-1700000000.1", channel="slack")
    assert stored is not None and [t.content for t in stored.turns] == ["Private?"]
    conversations.append("w1", Turn(role="user", content="Web?"))
    assert conversations.get("w1", channel="slack") is None


def test_feedback_expires(make_state) -> None:  # type: ignore[no-untyped-def]
    conversations = make_state(feedback_ttl_seconds=60).conversations
    conversations.append(
        "c1", Turn(role="user", content="When?"), Turn(role="assistant", content="1937", answer=ANSWER)
    )
    conversations.add_feedback("c1", 2, "up", "good")
    conversations.feedback_ttl = -1.0  # everything stored so far is older than the TTL
    assert conversations.get("c1") is not None
    assert conversations.feedback("c1") == []
