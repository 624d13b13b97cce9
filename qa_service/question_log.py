"""The question log: every answered question (abstained or not, confidence, answer time) for the admin page.

Recorded by `converse` (so every chat channel: HTTP, streaming, OpenAI-compatible, widget, Slack,
MCP) beside the conversation store, in the same database: SQLite `question_log` next to the
conversations (embedded default) or PostgreSQL `qa_question_log` (QA_STORE=pgvector, shared by
replicas). Ratings are read from the conversation store's feedback table (the latest rating of an
answer counts), joined on (conversation_id, turn). Rows older than QA_QUESTION_LOG_DAYS are pruned.
"""

from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import Connection

from qa_service.contract import Answer
from qa_service.conversations import DEFAULT_COLLECTION
from qa_service.sqlite_state import StateConnections
from qa_service.store.postgres import Postgres

logger = logging.getLogger(__name__)
PRUNE_CHANCE = 0.005

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS question_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, asked_at REAL NOT NULL, conversation_id TEXT NOT NULL,
    turn INTEGER NOT NULL, question TEXT NOT NULL, abstained INTEGER NOT NULL, confidence REAL NOT NULL,
    latency_ms REAL NOT NULL, answer TEXT NOT NULL, collection TEXT NOT NULL DEFAULT 'default'
);
CREATE INDEX IF NOT EXISTS question_log_asked ON question_log(asked_at);
CREATE INDEX IF NOT EXISTS question_log_turn ON question_log(conversation_id, turn);
CREATE INDEX IF NOT EXISTS question_log_collection ON question_log(collection);
"""
_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS qa_question_log (
    id BIGSERIAL PRIMARY KEY, asked_at DOUBLE PRECISION NOT NULL, conversation_id TEXT NOT NULL,
    turn INTEGER NOT NULL, question TEXT NOT NULL, abstained BOOLEAN NOT NULL,
    confidence DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, answer TEXT NOT NULL
);
ALTER TABLE qa_question_log ADD COLUMN IF NOT EXISTS collection TEXT NOT NULL DEFAULT 'default';
CREATE INDEX IF NOT EXISTS qa_question_log_collection ON qa_question_log (collection);
CREATE INDEX IF NOT EXISTS qa_question_log_asked ON qa_question_log (asked_at);
CREATE INDEX IF NOT EXISTS qa_question_log_turn ON qa_question_log (conversation_id, turn)
"""
_PG_NOW = "extract(epoch FROM clock_timestamp())"


@dataclass(frozen=True)
class LoggedQuestion:
    asked_at: float
    conversation_id: str
    turn: int
    question: str
    abstained: bool
    confidence: float
    latency_ms: float


@dataclass(frozen=True)
class Review:
    """A thumbs-down answer: what was asked, what was answered (with citations), the comment."""

    rated_at: float
    conversation_id: str
    turn: int
    question: str
    answer: Answer
    comment: str | None


class QuestionLog(ABC):
    """Storage of the log; the reports over it are in `qa_service.admin_reports`."""

    retention_days: float

    def record(
        self,
        conversation_id: str,
        turn: int,
        question: str,
        answer: Answer,
        latency_ms: float,
        collection: str = DEFAULT_COLLECTION,
    ) -> None:
        """Log one answered question of a collection (its id). A failure is logged, never raised: the
        user has the answer."""
        try:
            self._insert(conversation_id, turn, question, answer, latency_ms, collection)
            if random.random() < PRUNE_CHANCE:
                self.prune(time.time() - self.retention_days * 86400)
        except Exception:
            logger.warning("Could not record the question in the question log", exc_info=True)

    @abstractmethod
    def _insert(
        self, conversation_id: str, turn: int, question: str, answer: Answer, latency_ms: float, collection: str
    ) -> None: ...

    @abstractmethod
    def delete_collection(self, collection: str) -> int:
        """Delete the entries of a collection id; returns how many."""

    @abstractmethod
    def keep_collections(self, collections: set[str]) -> int:
        """Delete the entries of every collection id not in `collections`; returns how many."""

    @abstractmethod
    def prune(self, before: float) -> int:
        """Delete entries asked before `before` (Unix time); returns how many."""

    @abstractmethod
    def questions(
        self, since: float, until: float, abstained_only: bool = False, limit: int | None = None
    ) -> list[LoggedQuestion]:
        """Questions asked in [since, until), newest first."""

    @abstractmethod
    def timings(self, since: float, until: float) -> list[tuple[float, bool, float]]:
        """(asked_at, abstained, latency_ms) of every question asked in [since, until): light rows for analytics."""

    @abstractmethod
    def ratings(self, since: float, until: float) -> list[tuple[float, str]]:
        """(rated_at, 'up'|'down') of the answers rated in [since, until); an answer's latest rating counts."""

    @abstractmethod
    def thumbs_down(self, since: float, until: float, limit: int) -> list[Review]:
        """Answers whose latest rating in [since, until) is down, newest first."""

    @abstractmethod
    def close(self) -> None: ...


def _latest_feedback(table: str) -> str:
    return f"f.id IN (SELECT MAX(id) FROM {table} GROUP BY conversation_id, turn)"


class SQLiteQuestionLog(QuestionLog):
    """Beside the conversations in the state database: its own table; the `feedback` table it reads is
    the conversation store's (opened first, see `open_state`)."""

    def __init__(self, path: Path, retention_days: float = 90) -> None:
        self.path, self.retention_days = path, retention_days
        self._conn = StateConnections(path)
        with self._conn() as conn:
            columns = [r[1] for r in conn.execute("PRAGMA table_info(question_log)")]
            if columns and "collection" not in columns:  # a log from before collections: all `default`
                conn.execute("ALTER TABLE question_log ADD COLUMN collection TEXT NOT NULL DEFAULT 'default'")
            conn.executescript(_SQLITE_SCHEMA)

    def _insert(
        self, conversation_id: str, turn: int, question: str, answer: Answer, latency_ms: float, collection: str
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO question_log(asked_at, conversation_id, turn, question, abstained, confidence, "
                "latency_ms, answer, collection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    conversation_id,
                    turn,
                    question,
                    int(answer.abstained),
                    answer.confidence,
                    latency_ms,
                    answer.model_dump_json(),
                    collection,
                ),
            )

    def prune(self, before: float) -> int:
        with self._conn() as conn:
            return conn.execute("DELETE FROM question_log WHERE asked_at < ?", (before,)).rowcount

    def delete_collection(self, collection: str) -> int:
        with self._conn() as conn:
            return conn.execute("DELETE FROM question_log WHERE collection = ?", (collection,)).rowcount

    def keep_collections(self, collections: set[str]) -> int:
        with self._conn() as conn:
            found = {r[0] for r in conn.execute("SELECT DISTINCT collection FROM question_log")}
        return sum(self.delete_collection(c) for c in found - collections)

    def questions(
        self, since: float, until: float, abstained_only: bool = False, limit: int | None = None
    ) -> list[LoggedQuestion]:
        sql = (
            "SELECT asked_at, conversation_id, turn, question, abstained, confidence, latency_ms FROM question_log "
            "WHERE asked_at >= ? AND asked_at < ?" + (" AND abstained = 1" if abstained_only else "")
        )
        params: list[Any] = [since, until]
        sql += " ORDER BY asked_at DESC, id DESC"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [LoggedQuestion(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def timings(self, since: float, until: float) -> list[tuple[float, bool, float]]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT asked_at, abstained, latency_ms FROM question_log WHERE asked_at >= ? AND asked_at < ?",
                (since, until),
            ).fetchall()
        return [(r[0], bool(r[1]), r[2]) for r in rows]

    def ratings(self, since: float, until: float) -> list[tuple[float, str]]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT f.created_at, f.rating FROM feedback f WHERE {_latest_feedback('feedback')} "
                "AND f.created_at >= ? AND f.created_at < ?",
                (since, until),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def thumbs_down(self, since: float, until: float, limit: int) -> list[Review]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT f.created_at, q.conversation_id, q.turn, q.question, q.answer, f.comment FROM feedback f "
                "JOIN question_log q ON q.conversation_id = f.conversation_id AND q.turn = f.turn "
                f"WHERE {_latest_feedback('feedback')} AND f.rating = 'down' AND f.created_at >= ? "
                "AND f.created_at < ? ORDER BY f.created_at DESC, f.id DESC LIMIT ?",
                (since, until, limit),
            ).fetchall()
        return [Review(r[0], r[1], r[2], r[3], Answer.model_validate_json(r[4]), r[5]) for r in rows]

    def close(self) -> None:
        self._conn.close()


def create_pg_schema(conn: Connection[Any]) -> None:
    for statement in _PG_SCHEMA.split(";"):
        conn.execute(statement)


class PostgresQuestionLog(QuestionLog):
    """In the shared PostgreSQL (times from the database clock, like the conversations')."""

    def __init__(self, db: Postgres, retention_days: float = 90) -> None:
        self.db, self.retention_days = db, retention_days

    def _insert(
        self, conversation_id: str, turn: int, question: str, answer: Answer, latency_ms: float, collection: str
    ) -> None:
        self.db.rows(
            "INSERT INTO qa_question_log(asked_at, conversation_id, turn, question, abstained, confidence, "
            f"latency_ms, answer, collection) VALUES ({_PG_NOW}, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                conversation_id,
                turn,
                question,
                answer.abstained,
                answer.confidence,
                latency_ms,
                answer.model_dump_json(),
                collection,
            ),
        )

    def prune(self, before: float) -> int:
        return len(self.db.rows("DELETE FROM qa_question_log WHERE asked_at < %s RETURNING 1", (before,)))

    def delete_collection(self, collection: str) -> int:
        return len(self.db.rows("DELETE FROM qa_question_log WHERE collection = %s RETURNING 1", (collection,)))

    def keep_collections(self, collections: set[str]) -> int:
        found = self.db.rows("SELECT DISTINCT collection FROM qa_question_log")
        return sum(self.delete_collection(r["collection"]) for r in found if r["collection"] not in collections)

    def questions(
        self, since: float, until: float, abstained_only: bool = False, limit: int | None = None
    ) -> list[LoggedQuestion]:
        sql = (
            "SELECT asked_at, conversation_id, turn, question, abstained, confidence, latency_ms FROM qa_question_log "
            "WHERE asked_at >= %s AND asked_at < %s" + (" AND abstained" if abstained_only else "")
        )
        params: list[Any] = [since, until]
        sql += " ORDER BY asked_at DESC, id DESC"
        if limit is not None:
            sql, params = sql + " LIMIT %s", [*params, limit]
        return [
            LoggedQuestion(
                r["asked_at"],
                r["conversation_id"],
                r["turn"],
                r["question"],
                r["abstained"],
                r["confidence"],
                r["latency_ms"],
            )
            for r in self.db.rows(sql, params)
        ]

    def timings(self, since: float, until: float) -> list[tuple[float, bool, float]]:
        rows = self.db.rows(
            "SELECT asked_at, abstained, latency_ms FROM qa_question_log WHERE asked_at >= %s AND asked_at < %s",
            (since, until),
        )
        return [(r["asked_at"], r["abstained"], r["latency_ms"]) for r in rows]

    def ratings(self, since: float, until: float) -> list[tuple[float, str]]:
        rows = self.db.rows(
            f"SELECT f.created_at, f.rating FROM qa_feedback f WHERE {_latest_feedback('qa_feedback')} "
            "AND f.created_at >= %s AND f.created_at < %s",
            (since, until),
        )
        return [(r["created_at"], r["rating"]) for r in rows]

    def thumbs_down(self, since: float, until: float, limit: int) -> list[Review]:
        rows = self.db.rows(
            "SELECT f.created_at, q.conversation_id, q.turn, q.question, q.answer, f.comment FROM qa_feedback f "
            "JOIN qa_question_log q ON q.conversation_id = f.conversation_id AND q.turn = f.turn "
            f"WHERE {_latest_feedback('qa_feedback')} AND f.rating = 'down' AND f.created_at >= %s "
            "AND f.created_at < %s ORDER BY f.created_at DESC, f.id DESC LIMIT %s",
            (since, until, limit),
        )
        return [
            Review(
                r["created_at"],
                r["conversation_id"],
                r["turn"],
                r["question"],
                Answer.model_validate_json(r["answer"]),
                r["comment"],
            )
            for r in rows
        ]

    def close(self) -> None:
        """The pool is shared with the conversation store, which closes it."""
