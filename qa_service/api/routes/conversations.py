"""Conversation history and answer feedback."""

from __future__ import annotations

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from qa_service.api.deps import ChatAuth, ConversationsDep, PrincipalDep, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import ConversationOut, ConversationTurn, FeedbackOut, FeedbackRequest
from qa_service.api.scopes import owning
from qa_service.errors import NotFoundError

router = APIRouter(tags=["conversations"], dependencies=[ChatAuth])


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationOut,
    responses=errors(401, 404, 422, 429),
    summary="A conversation's turns with their citations.",
)
async def get_conversation(
    conversations: ConversationsDep,
    service: ServiceDep,
    principal: PrincipalDep,
    conversation_id: str = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
) -> ConversationOut:
    missing = f"Conversation {conversation_id!r} not found (unknown or expired)."
    found = await run_in_threadpool(conversations.get, conversation_id, "web")
    if found is None:
        raise NotFoundError(missing)
    collection = await run_in_threadpool(owning, principal, service, found.collection, missing)
    return ConversationOut(
        id=found.id,
        collection=collection.name,
        created_at=found.created_at,
        updated_at=found.updated_at,
        turns=[
            ConversationTurn(
                turn=t.turn,
                role=t.role,
                content=t.content,
                created_at=t.created_at,
                citations=t.answer.citations if t.answer else [],
                abstained=t.answer.abstained if t.answer else None,
            )
            for t in found.turns
        ],
    )


@router.post(
    "/v1/feedback",
    response_model=FeedbackOut,
    status_code=201,
    responses=errors(401, 404, 413, 422, 429),
    summary="Rate an answer up or down.",
)
async def feedback(
    body: FeedbackRequest, conversations: ConversationsDep, service: ServiceDep, principal: PrincipalDep
) -> FeedbackOut:
    conversations.check_id(body.conversation_id)
    missing = f"Conversation {body.conversation_id!r} not found (unknown or expired)."

    def rate() -> int:  # one worker thread, one read of the conversation
        found = conversations.get(body.conversation_id, "web")
        if found is None:
            raise NotFoundError(missing)
        owning(principal, service, found.collection, missing)  # 404 for a collection it may not ask
        return conversations.rate(found, body.turn, body.rating, body.comment)

    return FeedbackOut(id=await run_in_threadpool(rate))
