"""Who may do what with a collection: every (role x action x collection x QA_CHAT_API_KEY) case,
generated from the rules and run through the real resolution of a bearer token (`get_principal`,
`require_manager_or_admin`) and the real checks (`require_ask`, `require_manage`).

Rules (the README's): admin - everything; manager - ask and manage its collections; chat - ask its
collections; anonymous (no key) - exists only while QA_CHAT_API_KEY is unset. While it is unset, every
caller may also ask the public collections. Out of scope is one 403 whether the collection exists or
not; a collection that does not exist is allowed through only to callers whose scope names it (they
get the route's 404).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import SecretStr
from starlette.requests import Request

from qa_service.api.deps import get_principal, require_manager_or_admin
from qa_service.api.security import RateLimiter
from qa_service.errors import QAServiceError
from qa_service.keys import OUT_OF_SCOPE, Principal, SQLiteKeyStore
from qa_service.settings import Settings

OK = 200
ROLES = ("admin", "manager", "chat", "anonymous")
ACTIONS = ("ask", "manage")
SCOPES = ("mine", "theirs")  # the key's own collection, another one
STATES = ("public", "private", "missing")  # the collection's flag, or no such collection
CHAT_KEY = ("set", "unset")

EVERY_COLLECTION = {"admin"}
ASKS_ITS_OWN = {"admin", "manager", "chat"}
MANAGES_ITS_OWN = {"admin", "manager"}
NO_KEY = {"anonymous"}


def expected(role: str, action: str, scope: str, state: str, chat_key: str) -> int:
    """The rules above, as a function of one case."""
    if role in NO_KEY and (chat_key == "set" or action == "manage"):
        return 401
    owns = role in EVERY_COLLECTION or (scope == "mine" and role not in NO_KEY)
    if action == "manage":
        return OK if role in MANAGES_ITS_OWN and owns else 403
    if role in ASKS_ITS_OWN and owns:
        return OK
    return OK if state == "public" and chat_key == "unset" else 403


CASES = list(itertools.product(ROLES, ACTIONS, SCOPES, STATES, CHAT_KEY))
TABLE = {case: expected(*case) for case in CASES}


def _request(token: str | None, state: SimpleNamespace) -> Request:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "client": ("192.0.2.9", 1)}
    return Request({**scope, "app": SimpleNamespace(state=state)})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    store = SQLiteKeyStore(Path(tmp_path_factory.mktemp("keys")) / "state.sqlite")
    tokens: dict[str, str | None] = {
        "admin": store.create("admin")[1],
        "manager": store.create("manager", ["mine"])[1],
        "chat": store.create("chat", ["mine"])[1],
        "anonymous": None,
    }
    state = SimpleNamespace(keys=store, auth_failures=RateLimiter(10_000, 10_000), limiter=RateLimiter(10_000, 10_000))
    return {"tokens": tokens, "state": state}


def _run(world: dict[str, object], case: tuple[str, str, str, str, str]) -> tuple[int, str | None, list[str]]:
    role, action, scope, state, chat_key = case
    chat_api_key = SecretStr("bootstrap-chat") if chat_key == "set" else None
    settings = Settings(admin_api_key=SecretStr("bootstrap-admin"), chat_api_key=chat_api_key)
    flags = {"public": True, "private": False, "missing": None}
    consulted: list[str] = []

    def public_of(name: str) -> bool | None:
        consulted.append(name)
        return flags[state]

    request = _request(world["tokens"][role], world["state"])  # type: ignore[index]

    async def attempt() -> None:
        if action == "ask":
            principal: Principal = await get_principal(request, settings)
            principal.require_ask(scope, public_of)
        else:
            principal = await require_manager_or_admin(request, settings)
            principal.require_manage(scope)

    try:
        asyncio.run(attempt())
    except QAServiceError as exc:
        return exc.http_status, str(exc), consulted
    return OK, None, consulted


def test_the_generated_table_is_complete_and_says_what_the_rules_say() -> None:
    """Spot checks written by hand, so that a bug in `expected` cannot hide."""
    assert len(TABLE) == 4 * 2 * 2 * 3 * 2
    assert TABLE[("admin", "manage", "theirs", "private", "set")] == OK
    assert TABLE[("admin", "ask", "theirs", "missing", "set")] == OK  # the route then answers 404
    assert TABLE[("manager", "manage", "mine", "private", "set")] == OK
    assert TABLE[("manager", "manage", "theirs", "public", "unset")] == 403
    assert TABLE[("chat", "manage", "mine", "public", "unset")] == 403
    assert TABLE[("chat", "ask", "mine", "private", "set")] == OK
    assert TABLE[("chat", "ask", "theirs", "public", "unset")] == OK  # public chat: public collections
    assert TABLE[("chat", "ask", "theirs", "public", "set")] == 403
    assert TABLE[("chat", "ask", "theirs", "private", "unset")] == 403
    assert TABLE[("chat", "ask", "theirs", "missing", "unset")] == 403  # not 404: nothing revealed
    assert TABLE[("anonymous", "ask", "theirs", "public", "unset")] == OK
    assert TABLE[("anonymous", "ask", "mine", "private", "unset")] == 403
    assert TABLE[("anonymous", "ask", "theirs", "public", "set")] == 401
    assert TABLE[("anonymous", "manage", "mine", "public", "unset")] == 401
    assert sorted(set(TABLE.values())) == [OK, 401, 403]


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_every_case_gets_what_the_rules_say(world: dict[str, object], case: tuple[str, str, str, str, str]) -> None:
    status, message, consulted = _run(world, case)
    assert status == TABLE[case]
    role, action, scope, _, chat_key = case
    if status == 403 and (action == "ask" or role in MANAGES_ITS_OWN):  # (a chat key on a manage route: the role)
        assert message == OUT_OF_SCOPE  # one message, whatever exists
    owns = role in EVERY_COLLECTION or (scope == "mine" and role not in NO_KEY)
    if action == "manage" or owns or chat_key == "set":
        assert consulted == []  # decided from the scope alone: existence never consulted


def test_a_malformed_collection_name_is_a_422_for_everyone() -> None:
    for principal in (Principal("admin"), Principal("chat", frozenset({"hr"})), Principal.anonymous()):
        with pytest.raises(QAServiceError, match="1-64 characters") as info:
            principal.require_ask("HR Policies", lambda _: True)
        assert info.value.http_status == 422
        with pytest.raises(QAServiceError) as info:
            principal.require_manage("x" * 65)
        assert info.value.http_status == 422
