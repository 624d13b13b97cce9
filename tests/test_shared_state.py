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


def _turns(question: str) -> tuple[Turn, Turn]:
    return Turn(role="user", content=question), Turn(role="assistant", content="1937", answer=ANSWER)


def test_a_conversation_belongs_to_its_collection(make_state) -> None:  # type: ignore[no-untyped-def]
    conversations = make_state().conversations
    conversations.append("h1", *_turns("When?"), collection="c-hr")
    assert conversations.get("h1", collection="c-eng") is None
    assert conversations.history("h1", collection="c-eng") == []
    with pytest.raises(NotFoundError):
        conversations.append("h1", Turn(role="user", content="Appended?"), collection="c-eng")
    with pytest.raises(NotFoundError):
        conversations.add_feedback("h1", 2, "up", None, collection="c-eng")
    stored = conversations.get("h1", collection="c-hr")
    assert stored is not None and stored.collection == "c-hr" and len(stored.turns) == 2
    unscoped = conversations.get("h1")  # no collection named: the caller checks `collection` itself
    assert unscoped is not None and unscoped.collection == "c-hr"
    conversations.append("d1", *_turns("Default?"))
    default = conversations.get("d1")
    assert default is not None and default.collection == "default"


def test_deleting_a_collection_deletes_its_conversations_feedback_and_questions(make_state) -> None:  # type: ignore[no-untyped-def]
    state = make_state()
    conversations, questions = state.conversations, state.questions
    assert questions is not None
    for name, collection in (("h1", "c-hr"), ("h2", "c-hr"), ("e1", "c-eng")):
        conversations.append(name, *_turns("When?"), collection=collection)
        conversations.add_feedback(name, 2, "down", "wrong", collection=collection)
        questions.record(name, 2, "When?", ANSWER, 5.0, collection=collection)
    assert len(questions.questions(0, time.time() + 60)) == 3
    assert conversations.delete_collection("c-hr") == 2
    assert conversations.get("h1") is None and conversations.get("h2") is None
    assert conversations.feedback("h1") == [] and conversations.feedback("h2") == []
    assert questions.delete_collection("c-hr") == 2
    left = questions.questions(0, time.time() + 60)
    assert [q.conversation_id for q in left] == ["e1"]
    assert conversations.get("e1") is not None and len(conversations.feedback("e1")) == 1
    # what a crash between deleting a collection and its conversations leaves is cleaned up later
    assert conversations.keep_collections({"default"}) == 1
    assert questions.keep_collections({"default"}) == 1
    assert conversations.get("e1") is None and questions.questions(0, time.time() + 60) == []


_OLD_SQLITE = """
CREATE TABLE conversations (id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    channel TEXT NOT NULL DEFAULT 'web');
CREATE TABLE turns (conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, turn));
CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL, turn INTEGER NOT NULL,
    rating TEXT NOT NULL, comment TEXT, created_at REAL NOT NULL);
CREATE TABLE question_log (id INTEGER PRIMARY KEY AUTOINCREMENT, asked_at REAL NOT NULL,
    conversation_id TEXT NOT NULL, turn INTEGER NOT NULL, question TEXT NOT NULL, abstained INTEGER NOT NULL,
    confidence REAL NOT NULL, latency_ms REAL NOT NULL, answer TEXT NOT NULL);
"""


def test_state_from_before_collections_belongs_to_default(tmp_path: Path) -> None:
    import sqlite3

    now = time.time()
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        conn.executescript(_OLD_SQLITE)
        conn.execute("INSERT INTO conversations VALUES ('old', ?, ?, 'web')", (now, now))
        conn.execute("INSERT INTO turns VALUES ('old', 1, 'user', 'When?', NULL, ?)", (now,))
        conn.execute(
            "INSERT INTO feedback(conversation_id, turn, rating, created_at) VALUES ('old', 2, 'up', ?)", (now,)
        )
        conn.execute(
            "INSERT INTO question_log(asked_at, conversation_id, turn, question, abstained, confidence, latency_ms, "
            "answer) VALUES (?, 'old', 2, 'When?', 0, 0.9, 5, ?)",
            (now, ANSWER.model_dump_json()),
        )
    state = open_state(settings_for("faiss", tmp_path, None))
    try:
        old = state.conversations.get("old", collection="default")
        assert old is not None and [t.content for t in old.turns] == ["When?"]
        assert state.conversations.get("old", collection="c-hr") is None
        assert state.questions is not None and len(state.questions.questions(0, now + 60)) == 1
        assert state.conversations.delete_collection("default") == 1
        assert state.conversations.feedback("old") == [] and state.questions.delete_collection("default") == 1
    finally:
        state.close()


def test_postgres_state_from_before_collections_belongs_to_default(tmp_path: Path, database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE qa_conversations (id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, "
            "updated_at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL DEFAULT 'web')"
        )
        conn.execute(
            "INSERT INTO qa_conversations VALUES ('old', extract(epoch FROM now()), extract(epoch FROM now()))"
        )
    state = open_state(settings_for("pgvector", tmp_path, database_url))
    try:
        assert state.conversations.get("old", collection="default") is not None
        assert state.conversations.get("old", collection="c-hr") is None
    finally:
        state.close()
