"""The key store on both backends (SQLite state database, real PostgreSQL): create, look up by the
secret, only the hash stored, revoke, throttled last use, and the scope following collection renames
and deletions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qa_service.errors import InvalidInputError
from qa_service.keys.postgres import PostgresKeyStore
from qa_service.keys.sqlite import SQLiteKeyStore
from qa_service.keys.store import ID_PATTERN, KeyStore, hash_secret
from qa_service.store.postgres import Postgres


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    store: KeyStore
    clock: Clock
    replica: Callable[[], KeyStore]  # another process over the same database
    dump: Callable[[], str]  # everything the database holds, as text


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = Clock()
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite"
        store: KeyStore = SQLiteKeyStore(path, clock=clock)

        def dump_file() -> str:
            return b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite*")).decode("latin-1")

        yield Backend(store, clock, lambda: SQLiteKeyStore(path, clock=clock), dump_file)
    else:
        db = Postgres.shared(request.getfixturevalue("database_url"))
        store = PostgresKeyStore(db, clock=clock)

        def dump_tables() -> str:
            with db.connection() as conn:
                tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
                return "\n".join(str(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)

        yield Backend(store, clock, lambda: PostgresKeyStore(db, clock=clock), dump_tables)
    store.close()


def test_create_and_authenticate(backend: Backend) -> None:
    store = backend.store
    key, secret = store.create("manager", ["hr", "eng"], "  HR team  ")
    assert re.fullmatch(ID_PATTERN, key.id) and secret.startswith("qas_") and len(secret) >= 4 + 43
    assert (key.role, key.collections, key.name, key.created_at) == ("manager", ("eng", "hr"), "HR team", 1_000.0)
    found = store.authenticate(secret)
    assert found is not None and (found.id, found.role, found.collections) == (key.id, "manager", ("eng", "hr"))
    assert found.last_used_at == 1_000.0 and not found.revoked
    assert store.authenticate(secret + "x") is None and store.authenticate("qas_" + "A" * 43) is None
    assert store.authenticate("") is None
    backend.clock.now += 1
    other, other_secret = store.create("chat", ["hr"])
    assert other.id != key.id and other_secret != secret and other.name is None
    assert [k.id for k in store.list()] == [key.id, other.id]
    assert store.get(other.id) == other and store.get("key_000000000000") is None
    admin, admin_secret = store.create("admin")
    assert admin.collections == () and store.authenticate(admin_secret) is not None


def test_only_the_hash_of_a_secret_is_stored(backend: Backend) -> None:
    secrets = [backend.store.create("chat", ["hr"], "visible label")[1] for _ in range(3)]
    for secret in secrets:
        backend.store.authenticate(secret)
    dump = backend.dump()
    assert "visible label" in dump  # the dump does show what is stored
    for secret in secrets:
        assert hash_secret(secret) in dump
        assert secret not in dump and secret[4:] not in dump and secret[4:20] not in dump


def test_revoked_keys_authenticate_like_unknown_ones(backend: Backend) -> None:
    store = backend.store
    key, secret = store.create("chat", ["hr"])
    backend.clock.now += 1
    kept, kept_secret = store.create("chat", ["hr"])
    assert store.revoke(key.id) is True
    assert store.authenticate(secret) is None and store.authenticate(kept_secret) is not None
    assert backend.replica().authenticate(secret) is None  # every replica, at once
    backend.clock.now += 100
    assert store.revoke(key.id) is True  # idempotent: the first revocation time stays
    listed = {k.id: k for k in store.list()}
    assert listed[key.id].revoked_at == 1_001.0 and not listed[kept.id].revoked
    assert store.revoke("key_ffffffffffff") is False


def test_last_use_is_recorded_at_most_once_a_minute(backend: Backend) -> None:
    store = backend.store
    key, secret = store.create("chat", ["hr"])
    assert store.get(key.id).last_used_at is None  # type: ignore[union-attr]
    stamps = []
    for at in (1_000.0, 1_030.0, 1_059.0, 1_061.0, 1_062.0):
        backend.clock.now = at
        store.authenticate(secret)
        stamps.append(store.get(key.id).last_used_at)  # type: ignore[union-attr]
    assert stamps == [1_000.0, 1_000.0, 1_000.0, 1_061.0, 1_061.0]
    backend.clock.now = 1_090.0  # another replica: its first use here is within the minute too
    assert backend.replica().authenticate(secret) is not None
    assert store.get(key.id).last_used_at == 1_061.0  # type: ignore[union-attr]
    backend.clock.now = 1_125.0
    backend.replica().authenticate(secret)
    assert store.get(key.id).last_used_at == 1_125.0  # type: ignore[union-attr]


def test_scopes_follow_renamed_and_deleted_collections(backend: Backend) -> None:
    store = backend.store
    hr_chat, hr_secret = store.create("chat", ["hr"])
    both, _ = store.create("manager", ["eng", "hr"])  # same creation time: listed in id order
    eng_chat, eng_secret = store.create("chat", ["eng"])
    already, _ = store.create("chat", ["hr", "people"])
    admin, admin_secret = store.create("admin")

    assert store.rename_collection("hr", "people") == 3
    assert store.rename_collection("people", "people") == 0
    scopes = {k.id: k.collections for k in store.list()}
    assert scopes == {
        hr_chat.id: ("people",),
        both.id: ("eng", "people"),
        eng_chat.id: ("eng",),
        already.id: ("people",),
        admin.id: (),
    }
    found = store.authenticate(hr_secret)
    assert found is not None and found.collections == ("people",)

    backend.clock.now = 2_000.0
    assert store.forget_collection("eng") == 2
    listed = {k.id: k for k in store.list()}
    assert listed[both.id].collections == ("people",) and not listed[both.id].revoked
    assert listed[eng_chat.id].collections == () and listed[eng_chat.id].revoked_at == 2_000.0  # nothing left
    assert store.authenticate(eng_secret) is None
    assert store.forget_collection("people") == 3
    assert store.authenticate(hr_secret) is None
    assert store.authenticate(admin_secret) is not None and not store.get(admin.id).revoked  # type: ignore[union-attr]
    assert store.forget_collection("nothing-here") == 0


@pytest.mark.parametrize(
    ("role", "collections", "name", "fix"),
    [
        ("owner", ["hr"], None, "use one of admin, manager, chat"),
        ("admin", ["hr"], None, "leave 'collections' empty"),
        ("chat", [], None, "needs 'collections'"),
        ("manager", [], None, "needs 'collections'"),
        ("chat", ["HR"], None, "1-64 characters of lowercase letters"),
        ("chat", ["a" * 65], None, "1-64 characters"),
        ("chat", [""], None, "1-64 characters"),
        ("chat", ["hr", "eng", "hr"], None, "more than once: hr"),
        ("chat", ["hr"], "x" * 101, "at most 100"),
    ],
)
def test_bad_keys_are_refused_with_what_to_fix(
    backend: Backend, role: str, collections: list[str], name: str | None, fix: str
) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(fix)):
        backend.store.create(role, collections, name)  # type: ignore[arg-type]
    assert backend.store.list() == []
    with pytest.raises(InvalidInputError):
        backend.store.rename_collection("hr", "Bad Name")
