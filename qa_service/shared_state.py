"""State every replica must see: conversations, feedback, rate-limit buckets and Slack event ids.

Embedded default: SQLite beside the index, and in-process rate limits and Slack event ids (one
process). QA_STORE=pgvector: all of it in the same PostgreSQL as the index, so any replica continues
any conversation or Slack thread, a client's rate limit holds across replicas, and a Slack retry that
lands on another replica is still answered once. Times come from the database clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg import Connection

from qa_service.contract import Answer, Turn
from qa_service.conversations import (
    DEFAULT_COLLECTION,
    FEEDBACK_TTL_SECONDS,
    MIGRATE_CHANNEL,
    Channel,
    Conversation,
    ConversationStore,
    SQLiteConversationStore,
    StoredTurn,
)
from qa_service.errors import NotFoundError
from qa_service.question_log import PostgresQuestionLog, QuestionLog, SQLiteQuestionLog
from qa_service.question_log import create_pg_schema as create_question_log_schema
from qa_service.settings import Settings
from qa_service.slack.channels import ChannelMap, PostgresChannelMap, SQLiteChannelMap
from qa_service.slack.channels import create_pg_schema as create_channel_map_schema
from qa_service.store.postgres import Postgres
from qa_service.store.records import Collection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS qa_conversations (
    id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS qa_conversations_updated ON qa_conversations (updated_at);
CREATE TABLE IF NOT EXISTS qa_turns (
    conversation_id TEXT NOT NULL REFERENCES qa_conversations(id) ON DELETE CASCADE,
    turn INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT,
    created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (conversation_id, turn)
);
CREATE TABLE IF NOT EXISTS qa_feedback (
    id BIGSERIAL PRIMARY KEY, conversation_id TEXT NOT NULL, turn INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT, created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS qa_rate_buckets (
    identity TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, stamp DOUBLE PRECISION NOT NULL,
    allowed BOOLEAN NOT NULL
);
CREATE TABLE IF NOT EXISTS qa_slack_events (event_id TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS qa_slack_events_seen ON qa_slack_events (seen_at);
CREATE INDEX IF NOT EXISTS qa_feedback_created ON qa_feedback (created_at)
"""
_CHANNEL_COLUMN = "ALTER TABLE qa_conversations ADD COLUMN IF NOT EXISTS channel TEXT NOT NULL DEFAULT 'web'"
_COLLECTION_COLUMNS = (  # conversations and feedback stored before collections belong to `default`
    "ALTER TABLE qa_conversations ADD COLUMN IF NOT EXISTS collection TEXT NOT NULL DEFAULT 'default'",
    "ALTER TABLE qa_feedback ADD COLUMN IF NOT EXISTS collection TEXT NOT NULL DEFAULT 'default'",
    "CREATE INDEX IF NOT EXISTS qa_conversations_collection ON qa_conversations (collection)",
    "CREATE INDEX IF NOT EXISTS qa_feedback_collection ON qa_feedback (collection)",
)
_NOW = "extract(epoch FROM clock_timestamp())"


class Limiter(Protocol):
    blocking: bool  # True: does I/O, so callers on the event loop run it in a worker thread

    def hit(self, identity: str) -> None:
        """Count one request of `identity`; raises RateLimitedError (with Retry-After) when over."""


class EventLog(Protocol):
    def first_time(self, event_id: str) -> bool: ...


def create_schema(conn: Connection[Any]) -> None:
    """The tables of the three classes below (idempotent; `open_state` runs it under the setup lock)."""
    for statement in _SCHEMA.split(";"):
        conn.execute(statement)
    added = not conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'qa_conversations' AND column_name = 'channel'"
    ).fetchone()
    conn.execute(_CHANNEL_COLUMN)
    if added:  # conversations stored before channels existed
        conn.execute(MIGRATE_CHANNEL.format(table="qa_conversations"))
    for statement in _COLLECTION_COLUMNS:
        conn.execute(statement)


class PostgresConversationStore(ConversationStore):
    def __init__(
        self,
        db: Postgres,
        ttl_seconds: float = 7 * 24 * 3600,
        max_turns: int = 200,
        feedback_ttl_seconds: float = FEEDBACK_TTL_SECONDS,
    ) -> None:
        self.db, self.ttl, self.max_turns, self.feedback_ttl = db, ttl_seconds, max_turns, feedback_ttl_seconds

    def get(self, conversation_id: str, channel: Channel = "web", collection: str | None = None) -> Conversation | None:
        with self.db.transaction(writer_lock=False) as conn:
            conn.execute(f"DELETE FROM qa_conversations WHERE updated_at < {_NOW} - %s", (self.ttl,))
            conn.execute(f"DELETE FROM qa_feedback WHERE created_at < {_NOW} - %s", (self.feedback_ttl,))
            row = conn.execute(
                "SELECT created_at, updated_at, collection FROM qa_conversations WHERE id = %s AND channel = %s",
                (conversation_id, channel),
            ).fetchone()
            if row is None or (collection is not None and row[2] != collection):
                return None
            rows = conn.execute(
                "SELECT turn, role, content, answer, created_at FROM qa_turns WHERE conversation_id = %s ORDER BY turn",
                (conversation_id,),
            ).fetchall()
        turns = [StoredTurn(t, r, c, Answer.model_validate_json(a) if a else None, at) for t, r, c, a, at in rows]
        return Conversation(conversation_id, row[0], row[1], turns, row[2])

    def append(
        self, conversation_id: str, *turns: Turn, channel: Channel = "web", collection: str = DEFAULT_COLLECTION
    ) -> list[int]:
        with self.db.transaction(writer_lock=False) as conn:
            # The upsert locks the conversation's row until commit: appends to one conversation from
            # several replicas take turns, so turn numbers never collide.
            now, owner, owning_collection = conn.execute(
                "INSERT INTO qa_conversations(id, created_at, updated_at, channel, collection) "
                f"VALUES (%s, {_NOW}, {_NOW}, %s, %s) ON CONFLICT (id) DO UPDATE SET updated_at = EXCLUDED.updated_at "
                "RETURNING updated_at, channel, collection",
                (conversation_id, channel, collection),
            ).fetchone()  # type: ignore[misc]
            if (owner, owning_collection) != (channel, collection):  # rolled back
                raise NotFoundError(f"Conversation {conversation_id!r} not found (unknown or expired).")
            last = conn.execute(
                "SELECT COALESCE(MAX(turn), 0) FROM qa_turns WHERE conversation_id = %s", (conversation_id,)
            ).fetchone()[0]  # type: ignore[index]
            numbers = list(range(last + 1, last + 1 + len(turns)))
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO qa_turns(conversation_id, turn, role, content, answer, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (conversation_id, n, t.role, t.content, t.answer.model_dump_json() if t.answer else None, now)
                        for n, t in zip(numbers, turns, strict=True)
                    ],
                )
            conn.execute(
                "DELETE FROM qa_turns WHERE conversation_id = %s AND turn <= %s",
                (conversation_id, last + len(turns) - self.max_turns),
            )
        return numbers

    def _insert_feedback(
        self, conversation_id: str, turn: int, rating: str, comment: str | None, collection: str
    ) -> int:
        rows = self.db.rows(
            "INSERT INTO qa_feedback(conversation_id, turn, rating, comment, created_at, collection) "
            f"VALUES (%s, %s, %s, %s, {_NOW}, %s) RETURNING id",
            (conversation_id, turn, rating, comment, collection),
        )
        return int(rows[0]["id"])

    def delete_collection(self, collection: str) -> int:
        with self.db.transaction(writer_lock=False) as conn:
            conn.execute("DELETE FROM qa_feedback WHERE collection = %s", (collection,))
            return conn.execute("DELETE FROM qa_conversations WHERE collection = %s", (collection,)).rowcount

    def keep_collections(self, collections: set[str]) -> int:
        found = self.db.rows(
            "SELECT DISTINCT collection FROM qa_conversations UNION SELECT DISTINCT collection FROM qa_feedback"
        )
        return sum(self.delete_collection(r["collection"]) for r in found if r["collection"] not in collections)

    def feedback(self, conversation_id: str) -> list[dict[str, object]]:
        return self.db.rows(
            "SELECT turn, rating, comment, created_at FROM qa_feedback WHERE conversation_id = %s ORDER BY id",
            (conversation_id,),
        )

    def close(self) -> None:
        self.db.close()


class PostgresRateLimiter:
    """The token bucket of `RateLimiter`, one row per identity, updated in one atomic statement."""

    blocking = True

    def __init__(self, db: Postgres, per_minute: int, burst: int) -> None:
        self.db, self.rate, self.burst = db, per_minute / 60.0, float(burst)

    def hit(self, identity: str) -> None:
        from qa_service.api.security import RateLimitedError

        refill = f"LEAST(%(burst)s, b.tokens + ({_NOW} - b.stamp) * %(rate)s)"
        params = {"identity": identity, "burst": self.burst, "rate": self.rate}
        rows = self.db.rows(
            "INSERT INTO qa_rate_buckets AS b (identity, tokens, stamp, allowed) "
            f"VALUES (%(identity)s, %(burst)s - 1, {_NOW}, TRUE) ON CONFLICT (identity) DO UPDATE SET "
            f"tokens = CASE WHEN {refill} >= 1 THEN {refill} - 1 ELSE {refill} END, "
            f"allowed = {refill} >= 1, stamp = {_NOW} RETURNING tokens, allowed",
            params,
        )
        if random.random() < 0.001:  # forget idle clients now and then
            self.db.rows(f"DELETE FROM qa_rate_buckets WHERE stamp < {_NOW} - 3600 RETURNING 1")
        if not rows[0]["allowed"]:
            raise RateLimitedError(max(1, math.ceil((1.0 - float(rows[0]["tokens"])) / self.rate)))


class PostgresSeenEvents:
    """Slack event ids already accepted by any replica (retries are answered once)."""

    def __init__(self, db: Postgres, ttl_seconds: float = 3600) -> None:
        self.db, self.ttl = db, ttl_seconds

    def first_time(self, event_id: str) -> bool:
        if random.random() < 0.01:
            self.db.rows(f"DELETE FROM qa_slack_events WHERE seen_at < {_NOW} - %s RETURNING 1", (self.ttl,))
        rows = self.db.rows(
            f"INSERT INTO qa_slack_events(event_id, seen_at) VALUES (%s, {_NOW}) ON CONFLICT DO NOTHING RETURNING 1",
            (event_id,),
        )
        return bool(rows)


@dataclass
class SharedState:
    conversations: ConversationStore
    limiter: Limiter
    slack_events: EventLog
    questions: QuestionLog | None = None  # the admin page's question log (qa_service/question_log.py)
    slack_channels: ChannelMap | None = None  # which collection each Slack channel asks

    def close(self) -> None:
        if self.questions is not None:
            self.questions.close()
        if self.slack_channels is not None:
            self.slack_channels.close()
        self.conversations.close()

    def forget_collection(self, collection: Collection) -> None:
        """Delete what a deleted collection leaves here: conversations, feedback, logged questions and
        Slack channel mappings (each idempotent; `keep_collections` finishes what a crash interrupted)."""
        self.conversations.delete_collection(collection.id)
        if self.questions is not None:
            self.questions.delete_collection(collection.id)
        if self.slack_channels is not None:
            self.slack_channels.forget_collection(collection.name)

    def keep_collections(self, collections: list[Collection]) -> None:
        """Delete the conversations, feedback and logged questions of collections that no longer exist."""
        ids = {c.id for c in collections}
        self.conversations.keep_collections(ids)
        if self.questions is not None:
            self.questions.keep_collections(ids)


def open_state(settings: Settings) -> SharedState:
    """The state store the settings describe (see the module docstring)."""
    if settings.store == "pgvector" and settings.database_url is not None:
        db = Postgres.of_settings(settings)
        db.setup(create_schema)  # the tables of all three, before any is used
        db.setup(create_question_log_schema)
        db.setup(create_channel_map_schema)
        return SharedState(
            PostgresConversationStore(
                db,
                ttl_seconds=settings.conversation_ttl_seconds,
                feedback_ttl_seconds=settings.feedback_ttl_seconds,
            ),
            PostgresRateLimiter(db, settings.rate_limit_per_minute, settings.rate_limit_burst),
            PostgresSeenEvents(db),
            PostgresQuestionLog(db, settings.question_log_days),
            PostgresChannelMap(settings, db),
        )
    from qa_service.api.security import RateLimiter
    from qa_service.slack.bot import SeenEvents

    state_db = settings.state_db or settings.index_dir / "state.sqlite"
    return SharedState(
        SQLiteConversationStore(
            state_db,
            ttl_seconds=settings.conversation_ttl_seconds,
            feedback_ttl_seconds=settings.feedback_ttl_seconds,
        ),
        RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        SeenEvents(),
        SQLiteQuestionLog(state_db, settings.question_log_days),  # after the conversations: it reads their feedback
        SQLiteChannelMap(settings, state_db),
    )
