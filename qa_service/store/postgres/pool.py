"""PostgreSQL access for the pgvector backend: one connection pool per process and database.

- `snapshot()`: a REPEATABLE READ, READ ONLY transaction bound to the calling thread, so that every
  statement of one answer sees the same committed state, whatever other replicas write meanwhile.
- `transaction()`: a write transaction holding the cluster-wide writer lock (an advisory lock), so
  writes from any replica are serialised: no duplicate or lost sentences under concurrent ingest.
- `setup()`: schema creation under a session advisory lock (replicas starting together are safe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import psycopg
from pgvector.psycopg import register_vector
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from qa_service.errors import CollectionNotFoundError, DatabaseUnavailableError

if TYPE_CHECKING:
    from qa_service.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0  # seconds: connection (pool or new) and statement timeout (QA_DATABASE_TIMEOUT_SECONDS)
# Arbitrary 64-bit keys of the advisory locks (the same in every replica).
WRITE_LOCK = 0x7161_7772_6974_65  # "qawrite"
SETUP_LOCK = 0x7161_7365_7475_70  # "qasetup"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable database URL>"
    host, port, db = info.get("host", "localhost"), info.get("port", "5432"), info.get("dbname", "")
    return f"postgresql://{info.get('user', '')}@{host}:{port}/{db}"


class Postgres:
    """A connection pool with pgvector types registered and HNSW search parameters set."""

    _shared: ClassVar[dict[tuple[str, int, int, float], Postgres]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, url: str, pool_size: int = 8, ef_search: int = 100, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url, self.where, self.timeout = url, redact(url), timeout
        self._local = threading.local()
        # Every connection: bounded connect, TCP keepalive (a vanished server or network is noticed) and
        # a statement timeout, so that no request waits on the database for long.
        # Index writes and schema setup lift the statement timeout (they may wait on another replica's).
        reach: dict[str, Any] = {
            "connect_timeout": max(1, round(timeout)),
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        bounded = {**reach, "options": f"-c statement_timeout={int(timeout * 1000)}"}
        try:
            with psycopg.connect(url, autocommit=True, **reach) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(
                f"Cannot connect to PostgreSQL at {self.where}: {exc.args[0] if exc.args else exc}. "
                "Check QA_DATABASE_URL and that the server is running with the pgvector extension available."
            ) from exc

        def configure(conn: psycopg.Connection[Any]) -> None:
            register_vector(conn)
            conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")
            try:  # filtered searches scan on until k rows pass the filter (pgvector >= 0.8)
                conn.execute("SET hnsw.iterative_scan = strict_order")
            except psycopg.Error:
                logger.warning("pgvector < 0.8 at %s: filtered searches may return fewer rows", self.where)

        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, **bounded},
            configure=configure,
            open=False,
            name="qa-service",
        )
        self.pool.open(wait=True, timeout=max(30.0, timeout))

    @classmethod
    def shared(cls, url: str, pool_size: int = 8, ef_search: int = 100, timeout: float = DEFAULT_TIMEOUT) -> Postgres:
        """One pool per process for the store and the conversation state."""
        key = (url, pool_size, ef_search, timeout)
        with cls._shared_lock:
            db = cls._shared.get(key)
            if db is None or db.pool.closed:
                db = cls._shared[key] = cls(url, pool_size, ef_search, timeout)
            return db

    @classmethod
    def of_settings(cls, settings: Settings) -> Postgres:
        """The shared pool of QA_DATABASE_URL with the settings' pool size, ef_search and timeout."""
        url = settings.database_url.get_secret_value() if settings.database_url else ""
        return cls.shared(
            url, settings.database_pool_size, settings.pgvector_ef_search, settings.database_timeout_seconds
        )

    @classmethod
    def close_shared(cls, url: str | None = None) -> None:
        """Close the shared pools (of one database URL, or all)."""
        with cls._shared_lock:
            for key in [k for k in cls._shared if url is None or k[0] == url]:
                cls._shared.pop(key).close()

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                yield conn
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
            # The tables of a collection another replica deleted (its schema was dropped).
            raise CollectionNotFoundError("The collection no longer exists (it was deleted).") from exc
        except (psycopg.OperationalError, psycopg.errors.QueryCanceled, PoolTimeout) as exc:
            logger.warning("PostgreSQL at %s unavailable: %s", self.where, exc)
            raise DatabaseUnavailableError(f"The database at {self.where} is unavailable; try again shortly.") from exc

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's snapshot connection when inside `snapshot()`, else a pooled autocommit one."""
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            yield bound
            return
        with self._pooled() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:  # nested: the outer snapshot holds
            yield
            return
        with self._pooled() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def transaction(self, writer_lock: bool = True) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction (under the index writer lock unless told otherwise); rolled back on
        any exception."""
        with self._pooled() as conn, conn.transaction():
            if writer_lock:  # index writes: as long as they take (bulk loads, waiting for another writer)
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield conn

    def setup(self, create: Callable[[psycopg.Connection[Any]], None]) -> None:
        """Run `create` (idempotent DDL) while holding the setup lock, one process at a time."""
        with self._pooled() as conn:
            conn.execute("SET statement_timeout = 0")  # index builds; waiting for another replica's setup
            conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
            try:
                create(conn)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
                conn.execute("RESET statement_timeout")

    def rows(self, sql: Any, params: Any = ()) -> list[dict[str, Any]]:
        """Fetch as dicts, in PostgreSQL's binary format: vectors and bytea arrive as raw bytes
        (parsing the text form of 40 vectors cost more than the query)."""
        with self.connection() as conn, conn.cursor(row_factory=dict_row, binary=True) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def close(self) -> None:
        self.pool.close()
