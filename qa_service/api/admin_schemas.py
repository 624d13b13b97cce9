"""Response models of the admin endpoints (`/v1/admin/...`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qa_service.contract import Citation


class DayOut(BaseModel):
    date: str = Field(..., description="YYYY-MM-DD in the viewer's time zone (utc_offset_minutes).")
    questions: int
    abstained: int
    up: int
    down: int


class AnalyticsOut(BaseModel):
    days: list[DayOut]
    questions: int
    abstained: int
    abstention_rate: float | None = Field(..., description="abstained / questions; null without questions.")
    up: int = Field(..., description="Answers rated up in the period (an answer's latest rating counts).")
    down: int
    p50_ms: float | None = Field(..., description="Median answer time in milliseconds.")
    p95_ms: float | None


class QuestionOut(BaseModel):
    asked_at: float
    conversation_id: str
    turn: int
    question: str
    abstained: bool
    confidence: float
    latency_ms: float


class QuestionList(BaseModel):
    questions: list[QuestionOut]


class GapOut(BaseModel):
    question: str = Field(..., description="The most asked wording.")
    count: int = Field(..., description="Refused questions in the group.")
    last_asked_at: float
    examples: list[str] = Field(..., description="Other wordings in the group.")


class GapList(BaseModel):
    groups: list[GapOut]


class ReviewOut(BaseModel):
    rated_at: float
    conversation_id: str
    turn: int
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    comment: str | None


class ReviewList(BaseModel):
    reviews: list[ReviewOut]
