"""Dependencies: routes receive heavy resources and checks through these aliases (tests override them).

They are `async def` because they never block: FastAPI would run a plain `def` dependency in its
thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from qa_service.api.admission import AnswerAdmission
from qa_service.api.blocking import bounded_wait
from qa_service.api.observability import Metrics
from qa_service.api.security import (
    BOOTSTRAP_ADMIN_ID,
    BOOTSTRAP_CHAT_ID,
    RateLimiter,
    bearer_token,
    client_address,
    client_identity,
    verified_key,
)
from qa_service.conversations import ConversationStore
from qa_service.errors import AuthenticationError, ForbiddenError, IndexNotFoundError
from qa_service.keys import KeyStore, Principal
from qa_service.keys.principal import DEFAULT_COLLECTION
from qa_service.keys.store import looks_like_managed_key
from qa_service.question_log import QuestionLog
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.shared_state import Limiter, SharedState


async def get_service(request: Request) -> QAService:
    service: QAService | None = getattr(request.app.state, "service", None)
    if service is None:
        raise IndexNotFoundError("The service is starting; the index is not loaded yet.")
    return service


async def get_conversations(request: Request) -> ConversationStore:
    conversations: ConversationStore = request.app.state.conversations
    return conversations


async def get_questions(request: Request) -> QuestionLog | None:
    questions: QuestionLog | None = getattr(request.app.state, "questions", None)
    return questions


async def get_admission(request: Request) -> AnswerAdmission:
    admission: AnswerAdmission = request.app.state.admission
    return admission


async def get_shared(request: Request) -> SharedState:
    shared: SharedState = request.app.state.shared
    return shared


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_keys(request: Request) -> KeyStore:
    keys: KeyStore | None = getattr(request.app.state, "keys", None)
    if keys is None:
        raise IndexNotFoundError("The service is starting; the API keys are not loaded yet.")
    return keys


async def _limit(request: Request, settings: Settings, key_id: str | None) -> None:
    """Count the request in the bucket of its client address and verified key (by its public id). A
    limiter that talks to a database (QA_STORE=pgvector) runs in a worker thread: the event loop never
    waits on it."""
    limiter: Limiter = request.app.state.limiter
    identity = client_identity(client_address(request, settings.trusted_proxies), key_id)
    if limiter.blocking:
        await bounded_wait(limiter.hit, identity, seconds=settings.database_timeout_seconds)
    else:
        limiter.hit(identity)


def _bootstrap(settings: Settings, token: str, chat: bool) -> Principal | None:
    """The principal of a key from the settings: QA_ADMIN_API_KEY is an admin; QA_CHAT_API_KEY (chat
    routes only, as before keys had scopes) is a chat key over `default`."""
    public_chat = settings.chat_api_key is None
    if verified_key(token, settings.admin_api_key):
        return Principal("admin", frozenset(), BOOTSTRAP_ADMIN_ID, public_chat)
    if chat and verified_key(token, settings.chat_api_key):
        return Principal("chat", frozenset({DEFAULT_COLLECTION}), BOOTSTRAP_CHAT_ID, public_chat)
    return None


async def _authenticate(request: Request, settings: Settings, chat: bool) -> Principal:
    """The principal of the request's bearer token: a settings key, or a key of the key store (shape
    `qas_...`; looked up in a worker thread, bounded like every database call).

    Chat routes while chat is public (QA_CHAT_API_KEY unset): no token is the anonymous principal, and
    so is a token that is neither a settings key nor shaped like a stored key (OpenAI clients must send
    some key; such a token never picked a bucket). A `qas_` token that is unknown or revoked is a 401
    everywhere: a mistyped key is told so, not silently downgraded to anonymous.

    Failures are counted per client address: past QA_AUTH_FAILURES_BURST the address gets 429 (keys
    are not even compared) until its bucket refills."""
    failures: RateLimiter = request.app.state.auth_failures
    address = "ip:" + client_address(request, settings.trusted_proxies)
    anonymous_ok = chat and settings.chat_api_key is None
    token = bearer_token(request)
    if token is None and anonymous_ok:
        return Principal.anonymous()
    managed = token is not None and looks_like_managed_key(token)
    if not anonymous_ok or managed:
        failures.check(address)
    principal = None if token is None else _bootstrap(settings, token, chat)
    if principal is None and managed:
        keys = await get_keys(request)
        found = await bounded_wait(keys.authenticate, token, seconds=settings.database_timeout_seconds)
        if found is not None:
            principal = Principal(found.role, frozenset(found.collections), found.id, settings.chat_api_key is None)
    if principal is not None:
        return principal
    if anonymous_ok and not managed:
        return Principal.anonymous()
    failures.hit(address)
    if token is None:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    raise AuthenticationError("Invalid API key.")


async def get_principal(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """Any valid key, or anonymous while chat is public; then the rate limit of the client address and
    key id. Also left on `request.state.principal`. Per-collection checks are the route's
    (`principal.require_ask(name, public_of)`: before looking the collection up)."""
    principal = await _authenticate(request, settings, chat=True)
    await _limit(request, settings, principal.key_id)
    request.state.principal = principal
    return principal


async def require_chat(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """Chat endpoints outside FastAPI's dependencies (the MCP endpoint): as `get_principal`."""
    return await get_principal(request, settings)


async def _manage(request: Request, settings: Settings, roles: frozenset[str], refusal: str) -> Principal:
    if settings.admin_api_key is None and not looks_like_managed_key(bearer_token(request) or ""):
        raise ForbiddenError("Document and key management is disabled: set QA_ADMIN_API_KEY to enable it.")
    principal = await _authenticate(request, settings, chat=False)
    await _limit(request, settings, principal.key_id)
    request.state.principal = principal
    if principal.role not in roles:
        raise ForbiddenError(refusal)
    return principal


async def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """Admin endpoints: QA_ADMIN_API_KEY or a stored admin key (other valid keys: 403)."""
    return await _manage(request, settings, frozenset({"admin"}), "This needs an admin key.")


async def require_manager_or_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Principal:
    """Document endpoints: an admin or a manager key (other valid keys: 403). The route then checks
    the collection: `principal.require_manage(collection)`, before looking it up."""
    return await _manage(request, settings, frozenset({"admin", "manager"}), "This needs a manager or admin key.")


ServiceDep = Annotated[QAService, Depends(get_service)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
QuestionsDep = Annotated[QuestionLog | None, Depends(get_questions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SharedDep = Annotated[SharedState, Depends(get_shared)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdmissionDep = Annotated[AnswerAdmission, Depends(get_admission)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
# A route may take both a router-level `dependencies=[ChatAuth]` and a `PrincipalDep` parameter: they
# are the same callable, so FastAPI resolves it once per request (one key lookup, one rate-limit hit).
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ManagerDep = Annotated[Principal, Depends(require_manager_or_admin)]
ChatAuth = Depends(get_principal)
AdminAuth = Depends(require_admin)
ManagerAuth = Depends(require_manager_or_admin)
