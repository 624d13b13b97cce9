"""POST /v1/chat: JSON, or server-sent events when asked to stream."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from qa_service.api.deps import (
    AdmissionDep,
    ChatAuth,
    ConversationsDep,
    MetricsDep,
    PrincipalDep,
    QuestionsDep,
    ServiceDep,
)
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import ChatRequest, ChatResponse
from qa_service.api.scopes import askable
from qa_service.api.sse import SSE_EVENT_SCHEMA, SSE_HEADERS, SSE_MEDIA_TYPE, event, wants_stream
from qa_service.chat import ChatResult, converse, stream_chat
from qa_service.errors import QAServiceError

router = APIRouter(tags=["chat"])
logger = logging.getLogger(__name__)


def _response(result: ChatResult) -> ChatResponse:
    return ChatResponse(
        **result.answer.model_dump(),
        collection=result.collection,
        conversation_id=result.conversation_id,
        turn=result.turn,
    )


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    dependencies=[ChatAuth],
    responses={
        **errors(401, 403, 404, 413, 422, 429, 503),
        200: {
            "content": {SSE_MEDIA_TYPE: {"schema": SSE_EVENT_SCHEMA}},
            "description": "The answer, or with streaming: `answer` events (text deltas), a `citations` "
            "event, then `done` with the whole answer; failures arrive as an `error` event.",
        },
    },
    summary="Ask a question; the answer cites its source sentences.",
)
async def chat(
    body: ChatRequest,
    service: ServiceDep,
    conversations: ConversationsDep,
    metrics: MetricsDep,
    questions: QuestionsDep,
    principal: PrincipalDep,
    admission: AdmissionDep,
    accept: str | None = Header(None, include_in_schema=False),
) -> ChatResponse | StreamingResponse:
    if body.conversation_id:
        conversations.check_id(body.conversation_id)
    await run_in_threadpool(askable, principal, service, body.collection)  # 403 / 404 before any answer
    if wants_stream(accept, body.stream):
        service.check_capacity(body.mode)  # refused before the stream starts, with a status
        return StreamingResponse(
            _stream(body, service, conversations, metrics, questions), media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS
        )
    result = await admission.run(
        converse,
        service,
        conversations,
        body.message,
        body.conversation_id,
        None,
        body.mode,
        questions=questions,
        collection=body.collection,
    )
    metrics.answered("chat", result.answer.abstained)
    return _response(result)


def _stream(
    body: ChatRequest,
    service: ServiceDep,
    conversations: ConversationsDep,
    metrics: MetricsDep,
    questions: QuestionsDep = None,
) -> Iterator[str]:
    """A sync generator: Starlette iterates it in a worker thread, off the event loop."""
    try:
        chunks = stream_chat(
            service,
            conversations,
            body.message,
            body.conversation_id,
            mode=body.mode,
            questions=questions,
            collection=body.collection,
        )
        for item in chunks:
            if isinstance(item, str):
                yield event("answer", {"delta": item})
                continue
            metrics.answered("chat", item.answer.abstained)
            yield event("citations", {"citations": [c.model_dump() for c in item.answer.citations]})
            yield event("done", _response(item).model_dump())
    except QAServiceError as exc:
        yield event("error", {"error": {"code": exc.code, "message": exc.client_message()}})
    except Exception:
        logger.exception("Streaming chat failed")
        yield event("error", {"error": {"code": "internal_error", "message": "Internal server error."}})
