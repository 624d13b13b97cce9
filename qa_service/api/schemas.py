"""Request and response models of the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from qa_service.contract import Answer


class ChatRequest(BaseModel):
    message: str = Field(
        ..., min_length=1, description="The question.", examples=["How many troops withdrew from Kherson?"]
    )
    conversation_id: str | None = Field(None, description="Continue a conversation; omit to start one.")

    @field_validator("message")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be empty or only whitespace")
        return value


class ChatResponse(Answer):
    conversation_id: str = Field(..., description="Send it back to ask a follow-up question.")


class Health(BaseModel):
    status: str = Field("ok")
    documents: int
    sentences: int
    model: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
