"""POST /v1/chat/completions, compatible with OpenAI clients; citations travel as extra fields."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
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
from qa_service.api.schemas import (
    CompletionChoice,
    CompletionMessage,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    OpenAIMessage,
    Usage,
)
from qa_service.api.scopes import askable, visible
from qa_service.api.sse import SSE_EVENT_SCHEMA, SSE_HEADERS, SSE_MEDIA_TYPE
from qa_service.chat import ChatResult, converse, stream_chat
from qa_service.contract import AnswerMode, Turn
from qa_service.conversations import DEFAULT_COLLECTION
from qa_service.errors import InvalidInputError, QAServiceError
from qa_service.service import QAService
from qa_service.store.collections import NAME_PATTERN

router = APIRouter(tags=["openai"])
logger = logging.getLogger(__name__)


def _text(message: OpenAIMessage) -> str:
    if isinstance(message.content, list):  # content parts: keep the text ones
        return " ".join(str(p.get("text", "")) for p in message.content if p.get("type") == "text")
    return message.content or ""


def _question_and_history(body: CompletionRequest, service: QAService) -> tuple[str, list[Turn]]:
    users = [m for m in body.messages if m.role == "user"]
    if not users or body.messages[-1].role != "user" or not _text(users[-1]).strip():
        raise InvalidInputError("messages must end with a non-empty user message (the question).")
    service.check_history([(m.role, _text(m)) for m in body.messages[:-1]])
    history = [Turn(role="user", content=_text(m).strip()) for m in users[:-1]]
    return service.check_message(_text(users[-1])), history


def _usage(question: str, answer: str) -> Usage:
    prompt, completion = len(question.split()), len(answer.split())
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


@router.post(
    "/v1/chat/completions",
    response_model=CompletionResponse,
    dependencies=[ChatAuth],
    responses={
        **errors(401, 403, 404, 413, 422, 429, 503),
        200: {
            "content": {SSE_MEDIA_TYPE: {"schema": SSE_EVENT_SCHEMA}},
            "description": "A chat completion, or `chat.completion.chunk` events ending with `[DONE]`; "
            "the last chunk carries `citations`.",
        },
    },
    summary="OpenAI-compatible chat completions (the official SDK works unchanged).",
)
async def completions(
    body: CompletionRequest,
    service: ServiceDep,
    conversations: ConversationsDep,
    metrics: MetricsDep,
    questions: QuestionsDep,
    principal: PrincipalDep,
    admission: AdmissionDep,
) -> CompletionResponse | StreamingResponse:
    question, history = _question_and_history(body, service)
    collection = target_collection(body)
    await run_in_threadpool(askable, principal, service, collection)  # 403 / 404 before any answer
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        service.check_capacity(_mode(body.model))  # refused before the stream starts, with a status
        chunks = _stream(
            question,
            history,
            body.model,
            collection,
            completion_id,
            created,
            service,
            conversations,
            metrics,
            questions,
        )
        return StreamingResponse(chunks, media_type=SSE_MEDIA_TYPE, headers=SSE_HEADERS)
    result = await admission.run(
        converse,
        service,
        conversations,
        question,
        None,
        history,
        _mode(body.model),
        questions=questions,
        channel="openai",
        collection=collection,
    )
    metrics.answered("openai", result.answer.abstained)
    answer = result.answer
    return CompletionResponse(
        id=completion_id,
        created=created,
        model=body.model,
        usage=_usage(question, answer.answer),
        choices=[
            CompletionChoice(
                message=CompletionMessage(content=answer.answer, citations=answer.citations), citations=answer.citations
            )
        ],
        citations=answer.citations,
        abstained=answer.abstained,
        confidence=answer.confidence,
        mode_used=answer.mode_used,
    )


_MODES: dict[str, AnswerMode | None] = {
    "qa-service": None,
    "qa-service-generative": "generative",
    "qa-service-extractive": "extractive",
}
MODEL_PREFIX = "qa-service/"


@router.get(
    "/v1/models",
    response_model=ModelList,
    dependencies=[ChatAuth],
    responses=errors(401, 429, 503),
    summary="The collections this key may ask, as OpenAI model names (`qa-service/NAME`).",
)
async def models(service: ServiceDep, principal: PrincipalDep) -> ModelList:
    collections = visible(principal, await run_in_threadpool(service.collections))
    return ModelList(
        data=[ModelCard(id=MODEL_PREFIX + c.name, created=int(c.created_at)) for c in collections],
    )


def _mode(model: str) -> AnswerMode | None:
    """The answer mode a model name asks for (see `CompletionRequest.model`)."""
    return _MODES.get(model.partition("/")[0])


def target_collection(body: CompletionRequest) -> str:
    """The collection a completion asks: the model name's `/NAME` suffix (`qa-service/hr`), else the
    `collection` field, else `default`; a model name of another product (a client that cannot change
    it) asks `default`."""
    base, slash, named = body.model.partition("/")
    if base not in _MODES or not slash:
        return body.collection or DEFAULT_COLLECTION
    if not re.fullmatch(NAME_PATTERN, named):
        raise InvalidInputError(
            f"The model {body.model!r} names no valid collection: use qa-service/NAME, NAME being 1-64 characters "
            "of a-z, 0-9 and '-' (GET /v1/models lists them)."
        )
    if body.collection is not None and body.collection != named:
        raise InvalidInputError(
            f"The model names collection {named!r} but `collection` is {body.collection!r}; send one of them."
        )
    return named


def _chunk(
    completion_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> str:
    payload = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _stream(
    question: str,
    history: list[Turn],
    model: str,
    collection: str,
    completion_id: str,
    created: int,
    service: ServiceDep,
    conversations: ConversationsDep,
    metrics: MetricsDep,
    questions: QuestionsDep = None,
) -> Iterator[str]:
    result: ChatResult | None = None
    started = False
    try:
        for item in stream_chat(
            service,
            conversations,
            question,
            None,
            history,
            _mode(model),
            questions=questions,
            channel="openai",
            collection=collection,
        ):
            if not started:
                yield _chunk(completion_id, created, model, {"role": "assistant", "content": ""})
                started = True
            if isinstance(item, str):
                yield _chunk(completion_id, created, model, {"content": item})
            else:
                result = item
    except QAServiceError as exc:
        yield f"data: {json.dumps({'error': {'code': exc.code, 'message': exc.client_message()}})}\n\n"
        return
    except Exception:
        logger.exception("Streaming completion failed")
        yield f"data: {json.dumps({'error': {'code': 'internal_error', 'message': 'Internal server error.'}})}\n\n"
        return
    if result is None:  # pragma: no cover - stream_chat always ends with the result or raises
        return
    metrics.answered("openai", result.answer.abstained)
    answer = result.answer
    citations = [c.model_dump() for c in answer.citations]
    yield _chunk(
        completion_id,
        created,
        model,
        {},
        "stop",
        citations=citations,
        abstained=answer.abstained,
        confidence=answer.confidence,
        mode_used=answer.mode_used,
        usage=_usage(question, answer.answer).model_dump(),
    )
    yield "data: [DONE]\n\n"
