"""The answer contract shared by every channel (HTTP, widget, Slack, CLI --json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

AnswerMode = Literal["extractive", "generative"]


class Citation(BaseModel):
    index: int = Field(..., ge=1, description="1-based; the [n] marker used in the answer.")
    document_id: str = Field(..., description="Stable id of the source document.")
    source: str = Field(..., description="Source name (file path relative to the indexed folder, or title).")
    text: str = Field(..., description="The exact cited sentence: document text[start:end].")
    start: int = Field(..., ge=0, description="Character offset of the sentence in the document text.")
    end: int = Field(..., ge=0, description="End offset (exclusive).")
    score: float = Field(..., description="Ranking score of the sentence (higher is better).")
    location: str | None = Field(
        None, description="Where in the source the sentence is, for slides and tables: 'slide 4', 'Sheet1 row 3'."
    )


class Answer(BaseModel):
    answer: str = Field(..., description="Answer built from the cited sentences, with [n] markers.")
    abstained: bool = Field(..., description="True when the documents do not support an answer.")
    confidence: float = Field(..., ge=0.0, le=1.0, description="Estimated probability the answer is supported.")
    citations: list[Citation] = Field(default_factory=list)
    mode_used: Literal["extractive", "generative", "generative-trimmed", "extractive-fallback"] = Field(
        "extractive",
        description="extractive: the cited sentences themselves; generative: written by the language model, every "
        "sentence citing a source that supports it; generative-trimmed: the same after unsupported sentences or "
        "markers were removed; extractive-fallback: generative was asked for, but the model failed, timed out or "
        "wrote nothing the sources support, so this is the extractive answer.",
    )


class Turn(BaseModel):
    """One message of a conversation; assistant turns carry their answer."""

    role: Literal["user", "assistant"]
    content: str
    answer: Answer | None = None
