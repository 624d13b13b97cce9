"""Conversations and feedback; a conversation expires after an idle TTL.

`ConversationStore` holds what both backends share; `SQLiteConversationStore` (embedded default)
and `PostgresConversationStore` (QA_STORE=pgvector, shared by replicas) store the rows.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qa_service.contract import Answer, Turn
from qa_service.errors import InvalidInputError, NotFoundError
from qa_service.sqlite_state import StateConnections

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL, channel TEXT NOT NULL DEFAULT 'web',
    collection TEXT NOT NULL DEFAULT 'default'
);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, answer TEXT, created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, turn)
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, conversation_id TEXT NOT NULL, turn INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')), comment TEXT, created_at REAL NOT NULL,
    collection TEXT NOT NULL DEFAULT 'default'
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at);
CREATE INDEX IF NOT EXISTS conversations_collection ON conversations(collection);
CREATE INDEX IF NOT EXISTS feedback_collection ON feedback(collection);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
"""
# Conversations stored before channels existed: Slack's ids say so, the rest came over HTTP.
MIGRATE_CHANNEL = "UPDATE {table} SET channel = 'slack' WHERE id LIKE 'slack-%' AND channel = 'web'"
Channel = Literal["web", "slack"]
DEFAULT_COLLECTION = "default"  # the id of the collection every conversation stored before collections belongs to
FEEDBACK_TTL_SECONDS = 90 * 24 * 3600


@dataclass(frozen=True)
class StoredTurn:
    turn: int
    role: Literal["user", "assistant"]
    content: str
    answer: Answer | None
    created_at: float


@dataclass(frozen=True)
class Conversation:
    id: str
    created_at: float
    updated_at: float
    turns: list[StoredTurn]
    collection: str = DEFAULT_COLLECTION  # the id of the collection it asks


class ConversationStore(ABC):
    """A conversation belongs to the channel that created it ("web": the HTTP API and widget; "slack"):
    no other channel can read it, append to it or rate its answers."""

    ttl: float
    max_turns: int
    feedback_ttl: float

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def check_id(conversation_id: str) -> str:
        if not _ID.match(conversation_id):
            raise InvalidInputError("conversation_id must be 1-64 characters of letters, digits, '-' or '_'.")
        return conversation_id

    @abstractmethod
    def get(self, conversation_id: str, channel: Channel = "web", collection: str | None = None) -> Conversation | None:
        """The conversation with its turns, or None when unknown, expired, another channel's or (when
        `collection` names one) another collection's."""

    @abstractmethod
    def append(
        self, conversation_id: str, *turns: Turn, channel: Channel = "web", collection: str = DEFAULT_COLLECTION
    ) -> list[int]:
        """Store turns; returns their turn numbers (1-based, in conversation order). A new conversation
        belongs to `channel` and `collection` (a collection id); NotFoundError when it is another's."""

    @abstractmethod
    def _insert_feedback(
        self, conversation_id: str, turn: int, rating: str, comment: str | None, collection: str
    ) -> int: ...

    @abstractmethod
    def feedback(self, conversation_id: str) -> list[dict[str, object]]: ...

    @abstractmethod
    def delete_collection(self, collection: str) -> int:
        """Delete the conversations (with their turns) and the feedback of a collection id; returns how
        many conversations went."""

    @abstractmethod
    def keep_collections(self, collections: set[str]) -> int:
        """Delete the conversations and feedback of every collection id not in `collections` (what a
        crash between deleting a collection and deleting its conversations left); returns how many went."""

    @abstractmethod
    def close(self) -> None: ...

    def history(self, conversation_id: str, channel: Channel = "web", collection: str | None = None) -> list[Turn]:
        conversation = self.get(conversation_id, channel, collection)
        if conversation is None:
            return []
        return [Turn(role=t.role, content=t.content, answer=t.answer) for t in conversation.turns]

    def add_feedback(
        self,
        conversation_id: str,
        turn: int,
        rating: str,
        comment: str | None,
        channel: Channel = "web",
        collection: str | None = None,
    ) -> int:
        conversation = self.get(conversation_id, channel, collection)
        if conversation is None:
            raise NotFoundError(f"Conversation {conversation_id!r} not found (unknown or expired).")
        return self.rate(conversation, turn, rating, comment)

    def rate(self, conversation: Conversation, turn: int, rating: str, comment: str | None) -> int:
        """Feedback on the answer at `turn` of `conversation`, as the caller just read it (no second read)."""
        if not any(t.turn == turn and t.role == "assistant" for t in conversation.turns):
            raise NotFoundError(f"Conversation {conversation.id!r} has no answer at turn {turn}.")
        return self._insert_feedback(conversation.id, turn, rating, comment, conversation.collection)


class SQLiteConversationStore(ConversationStore):
    def __init__(
        self,
        path: Path,
        ttl_seconds: float = 7 * 24 * 3600,
        max_turns: int = 200,
        feedback_ttl_seconds: float = FEEDBACK_TTL_SECONDS,
    ) -> None:
        self.path, self.ttl, self.max_turns, self.feedback_ttl = path, ttl_seconds, max_turns, feedback_ttl_seconds
        self._conn = StateConnections(path, foreign_keys=True)
        self._lock = threading.Lock()
        with self._lock, self._conn() as conn:
            columns = [r[1] for r in conn.execute("PRAGMA table_info(conversations)")]
            if columns and "channel" not in columns:  # a state file from before channels
                conn.execute("ALTER TABLE conversations ADD COLUMN channel TEXT NOT NULL DEFAULT 'web'")
                conn.execute(MIGRATE_CHANNEL.format(table="conversations"))
            for table in ("conversations", "feedback"):  # a state file from before collections
                existing = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                if existing and "collection" not in existing:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN collection TEXT NOT NULL DEFAULT 'default'")
            conn.executescript(_SCHEMA)

    def get(self, conversation_id: str, channel: Channel = "web", collection: str | None = None) -> Conversation | None:
        with self._conn() as conn:
            self._expire(conn)
            row = conn.execute(
                "SELECT created_at, updated_at, collection FROM conversations WHERE id = ? AND channel = ?",
                (conversation_id, channel),
            ).fetchone()
            if row is None or (collection is not None and row[2] != collection):
                return None
            turns = [
                StoredTurn(t, r, c, Answer.model_validate_json(a) if a else None, at)
                for t, r, c, a, at in conn.execute(
                    "SELECT turn, role, content, answer, created_at FROM turns WHERE conversation_id = ? ORDER BY turn",
                    (conversation_id,),
                )
            ]
        return Conversation(conversation_id, row[0], row[1], turns, row[2])

    def append(
        self, conversation_id: str, *turns: Turn, channel: Channel = "web", collection: str = DEFAULT_COLLECTION
    ) -> list[int]:
        now = time.time()
        with self._lock, self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                owner = conn.execute(
                    "INSERT INTO conversations(id, created_at, updated_at, channel, collection) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET updated_at = excluded.updated_at RETURNING channel, collection",
                    (conversation_id, now, now, channel, collection),
                ).fetchone()
                if tuple(owner) != (channel, collection):
                    raise NotFoundError(f"Conversation {conversation_id!r} not found (unknown or expired).")
                last = conn.execute(
                    "SELECT COALESCE(MAX(turn), 0) FROM turns WHERE conversation_id = ?", (conversation_id,)
                ).fetchone()[0]
                numbers = []
                for n, turn in enumerate(turns, start=last + 1):
                    answer = turn.answer.model_dump_json() if turn.answer else None
                    conn.execute(
                        "INSERT INTO turns(conversation_id, turn, role, content, answer, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (conversation_id, n, turn.role, turn.content, answer, now),
                    )
                    numbers.append(n)
                conn.execute(
                    "DELETE FROM turns WHERE conversation_id = ? AND turn <= ?",
                    (conversation_id, last + len(turns) - self.max_turns),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return numbers

    def _insert_feedback(
        self, conversation_id: str, turn: int, rating: str, comment: str | None, collection: str
    ) -> int:
        with self._conn() as conn:
            cur = conn.execute(
                "INSERT INTO feedback(conversation_id, turn, rating, comment, created_at, collection) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, turn, rating, comment, time.time(), collection),
            )
        return int(cur.lastrowid or 0)

    def delete_collection(self, collection: str) -> int:
        with self._lock, self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM feedback WHERE collection = ?", (collection,))
                gone = conn.execute("DELETE FROM conversations WHERE collection = ?", (collection,)).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return int(gone)

    def keep_collections(self, collections: set[str]) -> int:
        with self._conn() as conn:
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT collection FROM conversations UNION SELECT DISTINCT collection FROM feedback"
                )
            }
        return sum(self.delete_collection(c) for c in found - collections)

    def feedback(self, conversation_id: str) -> list[dict[str, object]]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT turn, rating, comment, created_at FROM feedback WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [{"turn": r[0], "rating": r[1], "comment": r[2], "created_at": r[3]} for r in rows]

    def _expire(self, conn: sqlite3.Connection) -> None:
        now = time.time()
        conn.execute("DELETE FROM conversations WHERE updated_at < ?", (now - self.ttl,))
        conn.execute("DELETE FROM feedback WHERE created_at < ?", (now - self.feedback_ttl,))

    def close(self) -> None:
        self._conn.close()
