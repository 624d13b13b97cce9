"""Dependencies: routes receive heavy resources and checks through these aliases (tests override them).

They are `async def` because they never block: FastAPI would run a plain `def` dependency in its
thread pool, one thread hop per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from qa_service.api.observability import Metrics
from qa_service.api.security import ForbiddenError, bearer_token, check_key, client_identity
from qa_service.conversations import ConversationStore
from qa_service.errors import IndexNotFoundError
from qa_service.question_log import QuestionLog
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.shared_state import Limiter


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


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _limit(request: Request) -> None:
    limiter: Limiter = request.app.state.limiter
    limiter.hit(client_identity(request))


async def require_chat(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    """Chat endpoints: the chat key when one is configured (the admin key also works), then the rate limit."""
    if settings.chat_api_key is not None:
        check_key(bearer_token(request), settings.chat_api_key, settings.admin_api_key)
    _limit(request)


async def require_admin(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> None:
    if settings.admin_api_key is None:
        raise ForbiddenError("Document management is disabled: set QA_ADMIN_API_KEY to enable it.")
    check_key(bearer_token(request), settings.admin_api_key)
    _limit(request)


ServiceDep = Annotated[QAService, Depends(get_service)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
QuestionsDep = Annotated[QuestionLog | None, Depends(get_questions)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ChatAuth = Depends(require_chat)
AdminAuth = Depends(require_admin)
