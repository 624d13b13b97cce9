"""Dependencies: routes receive heavy resources through these aliases (tests override them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from qa_service.conversations import ConversationStore
from qa_service.service import QAService
from qa_service.settings import Settings


def get_service(request: Request) -> QAService:
    service: QAService = request.app.state.service
    return service


def get_conversations(request: Request) -> ConversationStore:
    conversations: ConversationStore = request.app.state.conversations
    return conversations


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


ServiceDep = Annotated[QAService, Depends(get_service)]
ConversationsDep = Annotated[ConversationStore, Depends(get_conversations)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
