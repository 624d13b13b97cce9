"""Request and response models of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qa_service.contract import Answer, AnswerMode, Citation
from qa_service.store.collections import NAME_PATTERN


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


COLLECTION_FIELD = Field(
    "default",
    min_length=1,
    max_length=64,
    pattern=NAME_PATTERN,
    description="The collection to ask (1-64 characters of a-z, 0-9 and '-'); default `default`.",
)


class ChatRequest(BaseModel):
    message: str = Field(
        ..., min_length=1, description="The question.", examples=["How many troops withdrew from Kherson?"]
    )
    collection: str = COLLECTION_FIELD
    conversation_id: str | None = Field(None, description="Continue a conversation; omit to start one.")
    stream: bool = Field(False, description="Stream server-sent events (same as `Accept: text/event-stream`).")
    mode: AnswerMode | None = Field(
        None,
        description="extractive: the cited source sentences; generative: a written answer whose every sentence cites "
        "a supporting source (needs an LLM on the server; falls back to extractive, see `mode_used`). "
        "Default: the server's QA_ANSWER_MODE.",
    )

    @field_validator("message")
    @classmethod
    def _message_not_blank(cls, value: str) -> str:
        return _not_blank(value)


class ChatResponse(Answer):
    collection: str = Field(..., description="The collection that answered.")
    conversation_id: str = Field(..., description="Send it back to ask a follow-up question.")
    turn: int = Field(..., ge=1, description="Turn number of this answer in the conversation (for feedback).")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    documents: int
    sentences: int
    model: str


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    generation: int = Field(..., description="Index generation being served.")


class ErrorDetail(BaseModel):
    code: str = Field(..., description="Stable machine-readable code.")
    message: str = Field(..., description="What went wrong and how to fix it.")


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- documents ------------------------------------------------------------------------------------
class DocumentText(BaseModel):
    source: str = Field(..., min_length=1, max_length=255, description="Name shown in citations.")
    text: str = Field(..., min_length=1, description="Plain text of the document.")
    collection: str = Field("default", description="The collection the document goes into.")

    @field_validator("source", "text")
    @classmethod
    def _fields_not_blank(cls, value: str) -> str:
        return _not_blank(value)


class DocumentInfo(BaseModel):
    id: str
    collection: str = Field("default", description="The collection the document belongs to.")
    source: str
    sentences: int = Field(..., description="Number of indexed sentences.")
    content_hash: str = Field(..., description="SHA-256 of the source content.")
    indexed_at: float = Field(..., description="Unix time of indexing.")


class DocumentDetail(DocumentInfo):
    text: str = Field(..., description="Full text; citation offsets index into it.")


class CitationContext(BaseModel):
    document_id: str
    source: str
    before: str = Field(..., description="Up to 400 characters of document text before the sentence.")
    sentence: str = Field(..., description="The cited sentence.")
    after: str = Field(..., description="Up to 400 characters after it.")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


# --- conversations and feedback -------------------------------------------------------------------
class ConversationTurn(BaseModel):
    turn: int
    role: Literal["user", "assistant"]
    content: str
    citations: list[Citation] = Field(default_factory=list)
    abstained: bool | None = None
    created_at: float


class ConversationOut(BaseModel):
    collection: str = Field(..., description="The collection the conversation asks.")
    id: str
    created_at: float
    updated_at: float
    turns: list[ConversationTurn]


class FeedbackRequest(BaseModel):
    conversation_id: str = Field(..., min_length=1, max_length=64)
    turn: int = Field(..., ge=1, description="The `turn` of the answer being rated.")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    id: int
    status: Literal["stored"] = "stored"


# --- OpenAI-compatible chat completions ----------------------------------------------------------
class OpenAIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = Field(
        "qa-service",
        max_length=200,
        description="Echoed. `qa-service-generative` asks for a generative answer, `qa-service-extractive` for "
        "the cited sentences; any other name gets the server's QA_ANSWER_MODE. A `/NAME` suffix asks collection "
        "NAME (`qa-service/hr`, `qa-service-generative/hr`; `GET /v1/models` lists them); otherwise `default`.",
    )
    collection: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="The collection to ask, if the model name does not say (they must agree when both do).",
    )
    messages: list[OpenAIMessage] = Field(..., min_length=1)
    stream: bool = False


class ModelCard(BaseModel):
    id: str = Field(..., description="`qa-service/NAME`: send it as `model` to ask collection NAME.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "qa-service"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    citations: list[Citation]


class CompletionChoice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop"] = "stop"
    citations: list[Citation]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[Citation]
    abstained: bool
    confidence: float
    mode_used: str = Field("extractive", description="As in /v1/chat.")


class SlackChannelTarget(BaseModel):
    collection: str = Field(..., min_length=1, max_length=64, pattern=NAME_PATTERN)


class SlackChannelMapping(BaseModel):
    channel: str
    collection: str
    source: Literal["api", "settings"] = Field(..., description="Set through this API, or in the settings.")


class SlackChannelList(BaseModel):
    channels: list[SlackChannelMapping]
    default_collection: str | None = Field(..., description="What an unmapped channel asks (null: not answered).")
    dm_collection: str | None = Field(..., description="What a direct message asks (null: refused).")
