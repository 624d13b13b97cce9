"""Routes: translate HTTP to QAService calls and back; nothing else."""

from __future__ import annotations

from fastapi import APIRouter

from qa_service.api.deps import ConversationsDep, ServiceDep
from qa_service.api.schemas import ChatRequest, ChatResponse, ErrorBody, Health
from qa_service.contract import Turn

router = APIRouter()

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": ErrorBody, "description": "Invalid request (e.g. empty or over-long message)."},
    503: {"model": ErrorBody, "description": "Index or model unavailable."},
}


@router.post(
    "/v1/chat",
    response_model=ChatResponse,
    responses=_ERRORS,
    tags=["chat"],
    summary="Ask a question; the answer cites its source sentences.",
)
def chat(body: ChatRequest, service: ServiceDep, conversations: ConversationsDep) -> ChatResponse:
    conversation_id = conversations.check_id(body.conversation_id) if body.conversation_id else conversations.new_id()
    answer = service.ask(body.message, history=conversations.history(conversation_id))
    conversations.append(
        conversation_id,
        Turn(role="user", content=body.message),
        Turn(role="assistant", content=answer.answer, answer=answer),
    )
    return ChatResponse(**answer.model_dump(), conversation_id=conversation_id)


@router.get("/healthz", response_model=Health, tags=["ops"], summary="Liveness and index size.")
def healthz(service: ServiceDep) -> Health:
    manifest = service.store.manifest()
    return Health(documents=manifest.documents, sentences=manifest.sentences, model=manifest.model)
