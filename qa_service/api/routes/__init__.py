"""HTTP routes; each module translates one area of the API to QAService calls and back."""

from fastapi import APIRouter

from qa_service.api.routes import chat, conversations, documents, openai_compat, ops, web

router = APIRouter()
for module in (chat, openai_compat, conversations, web, documents, ops):
    router.include_router(module.router)
