"""API keys (admin only): create (the secret is shown once), list (never a secret), revoke."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from qa_service.api.blocking import bounded_wait
from qa_service.api.deps import AdminAuth, KeysDep, SettingsDep, get_service
from qa_service.api.routes.responses import errors
from qa_service.api.security import BOOTSTRAP_ADMIN_ID, BOOTSTRAP_CHAT_ID
from qa_service.errors import InvalidInputError, NotFoundError
from qa_service.keys import ApiKey
from qa_service.keys.principal import validate_collection_name
from qa_service.keys.store import MAX_NAME_CHARS

router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[AdminAuth])
KeyId = Path(..., min_length=1, max_length=64, description="The key's id (key_ + 12 hex digits).")
_SCOPE = "Collection names (1-64 characters of a-z, 0-9, '-'): required for manager and chat keys, empty for admin."


class KeyNotFoundError(NotFoundError):
    code = "key_not_found"


class KeyCreate(BaseModel):
    role: Literal["admin", "manager", "chat"] = Field(
        description="admin: everything; manager: ask and manage the documents of its collections; chat: ask them."
    )
    collections: list[str] = Field(default_factory=list, max_length=1000, description=_SCOPE)
    name: str | None = Field(None, max_length=MAX_NAME_CHARS, description="A label, e.g. who holds the key.")


class KeyOut(BaseModel):
    id: str
    role: Literal["admin", "manager", "chat"]
    collections: list[str]
    name: str | None
    created_at: float = Field(description="Unix time.")
    last_used_at: float | None = Field(description="Unix time, recorded at most once a minute; null: never used.")
    revoked: bool


class KeyCreated(BaseModel):
    id: str
    key: str = Field(description="The secret, shown this once: send it as 'Authorization: Bearer <key>'.")
    role: Literal["admin", "manager", "chat"]
    collections: list[str]
    name: str | None
    created_at: float


class KeyList(BaseModel):
    keys: list[KeyOut]


def _out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        role=key.role,
        collections=list(key.collections),
        name=key.name,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked=key.revoked,
    )


@router.post(
    "",
    response_model=KeyCreated,
    status_code=201,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Create a key; the response is the only time its secret is shown.",
)
async def create_key(
    body: KeyCreate, keys: KeysDep, settings: SettingsDep, request: Request, response: Response
) -> KeyCreated:
    if body.collections:  # a key names existing collections (404 otherwise)
        service = await get_service(request)

        def check_collections() -> None:
            for name in body.collections:
                service.collection(validate_collection_name(name))

        await run_in_threadpool(check_collections)
    key, secret = await bounded_wait(
        keys.create, body.role, body.collections, body.name, seconds=settings.database_timeout_seconds
    )
    response.headers["Cache-Control"] = "no-store"
    out = _out(key)
    return KeyCreated(key=secret, **out.model_dump(include={"id", "role", "collections", "name", "created_at"}))


@router.get("", response_model=KeyList, responses=errors(401, 403, 429, 503), summary="Every key (revoked too).")
async def list_keys(keys: KeysDep, settings: SettingsDep) -> KeyList:
    listed = await bounded_wait(keys.list, seconds=settings.database_timeout_seconds)
    return KeyList(keys=[_out(k) for k in listed])


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Revoke a key: it stops working at once, on every replica.",
)
async def revoke_key(keys: KeysDep, settings: SettingsDep, key_id: str = KeyId) -> Response:
    if key_id in (BOOTSTRAP_ADMIN_ID, BOOTSTRAP_CHAT_ID):
        raise InvalidInputError(
            f"{key_id!r} is a key from the settings (QA_ADMIN_API_KEY, QA_CHAT_API_KEY): change the setting instead."
        )
    if not await bounded_wait(keys.revoke, key_id, seconds=settings.database_timeout_seconds):
        raise KeyNotFoundError(f"API key {key_id!r} not found.")
    return Response(status_code=204)
