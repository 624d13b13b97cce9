"""Which collection a Slack channel asks: mappings set through the API (`PUT /v1/slack/channels/{id}`)
or in settings (QA_SLACK_CHANNELS, QA_SLACK_CHANNELS_FILE); the API's win. Unmapped channels ask
QA_SLACK_DEFAULT_COLLECTION and direct messages QA_SLACK_DM_COLLECTION; either may be empty, and then
such messages are refused with a hint instead of answered.

API mappings are stored beside the conversations: SQLite `slack_channels` in the state database
(embedded) or PostgreSQL `qa_slack_channels` (QA_STORE=pgvector, shared by replicas).
"""

from __future__ import annotations

import json
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from psycopg import Connection

from qa_service.errors import InvalidInputError
from qa_service.settings import Settings
from qa_service.sqlite_state import StateConnections
from qa_service.store.collections import NAME_PATTERN
from qa_service.store.postgres import Postgres

_CHANNEL_ID = re.compile(r"^[A-Z0-9]{1,32}$")
_SQLITE_SCHEMA = "CREATE TABLE IF NOT EXISTS slack_channels (channel TEXT PRIMARY KEY, collection TEXT NOT NULL)"
PG_SCHEMA = "CREATE TABLE IF NOT EXISTS qa_slack_channels (channel TEXT PRIMARY KEY, collection TEXT NOT NULL)"


def check_channel_id(channel: str) -> str:
    if not _CHANNEL_ID.match(channel):
        raise InvalidInputError("A Slack channel id is 1-32 characters of A-Z and 0-9 (e.g. C0123ABCD), not its name.")
    return channel


def settings_mappings(settings: Settings) -> dict[str, str]:
    """QA_SLACK_CHANNELS_FILE (a JSON object, channel id -> collection name) overlaid by QA_SLACK_CHANNELS."""
    mappings: dict[str, str] = {}
    if settings.slack_channels_file is not None:
        try:
            loaded = json.loads(Path(settings.slack_channels_file).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"QA_SLACK_CHANNELS_FILE could not be read as JSON: {exc}") from exc
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise InvalidInputError('QA_SLACK_CHANNELS_FILE must hold a JSON object: {"C0123ABCD": "hr", ...}.')
        mappings.update(loaded)
    mappings.update(settings.slack_channels)
    for channel, collection in mappings.items():
        check_channel_id(channel)
        if not re.fullmatch(NAME_PATTERN, collection):
            raise InvalidInputError(f"Slack channel {channel} maps to {collection!r}, which is no collection name.")
    return mappings


@dataclass(frozen=True)
class Mapping:
    channel: str
    collection: str
    source: Literal["api", "settings"]


class ChannelMap(ABC):
    """The API's mappings (stored) over the settings' (read once)."""

    def __init__(self, settings: Settings) -> None:
        self.configured = settings_mappings(settings)
        self.default_collection = settings.slack_default_collection or None
        self.dm_collection = settings.slack_dm_collection or None

    @abstractmethod
    def _stored(self) -> dict[str, str]: ...

    @abstractmethod
    def _lookup(self, channel: str) -> str | None: ...

    @abstractmethod
    def set(self, channel: str, collection: str) -> None: ...

    @abstractmethod
    def delete(self, channel: str) -> bool:
        """Remove an API mapping; False when the channel had none (settings' mappings stay)."""

    @abstractmethod
    def rename_collection(self, old: str, new: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def forget_collection(self, name: str) -> int:
        """Remove the API mappings to a deleted collection; returns how many."""

    def mappings(self) -> list[Mapping]:
        stored = self._stored()
        merged = [Mapping(c, n, "settings") for c, n in self.configured.items() if c not in stored]
        merged += [Mapping(c, n, "api") for c, n in stored.items()]
        return sorted(merged, key=lambda m: m.channel)

    def collection_for(self, channel: str, direct: bool) -> str | None:
        """The collection a message in `channel` asks, or None when such messages are not answered."""
        if direct:
            return self.dm_collection
        return self._lookup(channel) or self.configured.get(channel) or self.default_collection


class SQLiteChannelMap(ChannelMap):
    def __init__(self, settings: Settings, path: Path) -> None:
        super().__init__(settings)
        self._conn = StateConnections(path)
        self._lock = threading.Lock()
        with self._conn() as conn:
            conn.execute(_SQLITE_SCHEMA)

    def _stored(self) -> dict[str, str]:
        with self._conn() as conn:
            return dict(conn.execute("SELECT channel, collection FROM slack_channels").fetchall())

    def _lookup(self, channel: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute("SELECT collection FROM slack_channels WHERE channel = ?", (channel,)).fetchone()
        return row[0] if row else None

    def set(self, channel: str, collection: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO slack_channels(channel, collection) VALUES (?, ?) "
                "ON CONFLICT(channel) DO UPDATE SET collection = excluded.collection",
                (check_channel_id(channel), collection),
            )

    def delete(self, channel: str) -> bool:
        with self._conn() as conn:
            return conn.execute("DELETE FROM slack_channels WHERE channel = ?", (channel,)).rowcount > 0

    def rename_collection(self, old: str, new: str) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE slack_channels SET collection = ? WHERE collection = ?", (new, old))

    def forget_collection(self, name: str) -> int:
        with self._conn() as conn:
            return conn.execute("DELETE FROM slack_channels WHERE collection = ?", (name,)).rowcount

    def close(self) -> None:
        self._conn.close()


def create_pg_schema(conn: Connection[Any]) -> None:
    conn.execute(PG_SCHEMA)


class PostgresChannelMap(ChannelMap):
    def __init__(self, settings: Settings, db: Postgres) -> None:
        super().__init__(settings)
        self.db = db

    def _stored(self) -> dict[str, str]:
        return {
            r["channel"]: r["collection"] for r in self.db.rows("SELECT channel, collection FROM qa_slack_channels")
        }

    def _lookup(self, channel: str) -> str | None:
        rows = self.db.rows("SELECT collection FROM qa_slack_channels WHERE channel = %s", (channel,))
        return rows[0]["collection"] if rows else None

    def set(self, channel: str, collection: str) -> None:
        self.db.rows(
            "INSERT INTO qa_slack_channels(channel, collection) VALUES (%s, %s) "
            "ON CONFLICT (channel) DO UPDATE SET collection = EXCLUDED.collection RETURNING 1",
            (check_channel_id(channel), collection),
        )

    def delete(self, channel: str) -> bool:
        return bool(self.db.rows("DELETE FROM qa_slack_channels WHERE channel = %s RETURNING 1", (channel,)))

    def rename_collection(self, old: str, new: str) -> None:
        self.db.rows("UPDATE qa_slack_channels SET collection = %s WHERE collection = %s RETURNING 1", (new, old))

    def forget_collection(self, name: str) -> int:
        return len(self.db.rows("DELETE FROM qa_slack_channels WHERE collection = %s RETURNING 1", (name,)))

    def close(self) -> None:
        """The pool is shared with the conversation store, which closes it."""
