"""HTTP routes; each module translates one area of the API to QAService calls and back."""

from fastapi import APIRouter

from qa_service.api.routes import (
    admin,
    chat,
    collections,
    conversations,
    documents,
    openai_compat,
    ops,
    slack,
    slack_channels,
    web,
)

router = APIRouter()
for module in (chat, openai_compat, conversations, web, collections, documents, ops, slack, slack_channels, admin):
    router.include_router(module.router)
router.include_router(admin.page_router)
