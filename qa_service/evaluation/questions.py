"""A team's own question file, asked against its own index (`qa-service eval questions FILE.jsonl`).

One JSON object per line:
  {"question": "...", "expect": "<a substring of the sentence that should be cited first>"}
  {"question": "...", "unanswerable": true}
Either may carry "history": the earlier user questions of the conversation (strings, or
{"role", "content"} turns), so follow-ups are checked as a user would ask them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from qa_service.contract import Turn
from qa_service.errors import InvalidInputError
from qa_service.evaluation.metrics import Outcome, summarize
from qa_service.service import QAService

MAX_LINES = 10_000


class EvalQuestion(BaseModel):
    question: str = Field(..., min_length=1, max_length=2000)
    expect: str | None = Field(None, min_length=1)
    unanswerable: bool = False
    history: list[str | Turn] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _one_kind(self) -> EvalQuestion:
        if self.unanswerable == (self.expect is not None):
            raise ValueError('give either "expect" (a substring of the right sentence) or "unanswerable": true')
        return self

    def turns(self) -> list[Turn]:
        return [h if isinstance(h, Turn) else Turn(role="user", content=h) for h in self.history]


def load_questions(path: Path) -> list[EvalQuestion]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path.name} cannot be read as UTF-8 text ({exc.__class__.__name__}).") from exc
    questions: list[EvalQuestion] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(questions) >= MAX_LINES:
            raise InvalidInputError(f"{path.name}: more than {MAX_LINES} questions; split the file.")
        try:
            questions.append(EvalQuestion.model_validate(json.loads(line)))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "not valid JSON"
            raise InvalidInputError(f"{path.name}, line {n}: {detail}.") from exc
    if not questions:
        raise InvalidInputError(f"{path.name} holds no questions.")
    return questions


def _holds(sentence: str, expected: str) -> bool:
    return " ".join(expected.lower().split()) in " ".join(sentence.lower().split())


def evaluate_questions(
    service: QAService, questions: list[EvalQuestion], collection: str = "default"
) -> dict[str, Any]:
    """The same metrics as the SQuAD evaluation (asked in `collection`), plus every question the
    service got wrong."""
    outcomes, failures = [], []
    for q in questions:
        detailed = service.ask_detailed(q.question, history=q.turns(), collection=collection)
        answer, top = detailed.answer, [d.content or "" for d in detailed.ranked[:3]]
        if q.unanswerable:
            outcome = Outcome(False, answer.confidence, answer.abstained)
            ok = answer.abstained
        else:
            assert q.expect is not None
            hit1 = bool(top) and _holds(top[0], q.expect)
            outcome = Outcome(True, answer.confidence, answer.abstained, hit1, any(_holds(s, q.expect) for s in top))
            ok = hit1 and not answer.abstained
        outcomes.append(outcome)
        if not ok:
            failures.append(
                {
                    "question": q.question,
                    "expected": "refusal" if q.unanswerable else q.expect,
                    "got": "refusal" if answer.abstained else (top[0] if top else ""),
                    "confidence": answer.confidence,
                }
            )
    return {"questions": len(questions), **summarize(outcomes), "failures": failures}
