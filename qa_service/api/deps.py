"""Dependencies: routes receive heavy resources and checks through these aliases (tests override them).

They are `async def` because they never block: FastAPI would run a plain `def` dependency in its
thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from qa_service.api.blocking import bounded_wait
from qa_service.api.observability import Metrics
from qa_service.api.security import (
    ForbiddenError,
    RateLimiter,
    bearer_token,
    check_key,
    client_address,
    client_identity,
    verified_key,
)
from qa_service.conversations import ConversationStore
from qa_service.errors import IndexNotFoundError
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


async def get_shared(request: Request) -> SharedState:
    shared: SharedState = request.app.state.shared
    return shared


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _limit(request: Request, settings: Settings, key: str | None) -> None:
    """Count the request in the bucket of its client address and verified key. A limiter that talks
    to a database (QA_STORE=pgvector) runs in a worker thread: the event loop never waits on it."""
    limiter: Limiter = request.app.state.limiter
    identity = client_identity(client_address(request, settings.trusted_proxies), key)
    if limiter.blocking:
        await bounded_wait(limiter.hit, identity, seconds=settings.database_timeout_seconds)
    else:
        limiter.hit(identity)


def _authenticate(request: Request, settings: Settings, *accepted: SecretStr | None) -> str:
    """The presented key if it is one of `accepted`. Failures are counted per client address: past
    QA_AUTH_FAILURES_BURST, the address gets 429 (keys are not even compared) until its bucket refills."""
    failures: RateLimiter = request.app.state.auth_failures
    address = "ip:" + client_address(request, settings.trusted_proxies)
    failures.check(address)
    presented = bearer_token(request)
    key = verified_key(presented, *accepted)
    if key is None:
        failures.hit(address)
        check_key(presented, *accepted)  # raises the 401 that says what was wrong
    return presented  # type: ignore[return-value]


async def require_chat(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Chat endpoints: the chat key when one is configured (the admin key also works), then the rate
    limit of the client address (and key). With public chat, a presented token picks no bucket."""
    key = None
    if settings.chat_api_key is not None:
        key = _authenticate(request, settings, settings.chat_api_key, settings.admin_api_key)
    await _limit(request, settings, key)


async def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if settings.admin_api_key is None:
        raise ForbiddenError("Document management is disabled: set QA_ADMIN_API_KEY to enable it.")
    key = _authenticate(request, settings, settings.admin_api_key)
    await _limit(request, settings, key)


ServiceDep = Annotated[QAService, Depends(get_service)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
QuestionsDep = Annotated[QuestionLog | None, Depends(get_questions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SharedDep = Annotated[SharedState, Depends(get_shared)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ChatAuth = Depends(require_chat)
AdminAuth = Depends(require_admin)
