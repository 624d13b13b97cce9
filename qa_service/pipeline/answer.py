"""Answer construction: cite the selected sentences verbatim, or abstain."""

from __future__ import annotations

import math
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.contract import Answer, Citation
from qa_service.settings import AbstentionModel

ABSTAIN_MESSAGE = "I could not find this in the documents."


def support_probability(evidence: dict[str, float], model: AbstentionModel) -> float:
    """Logistic estimate that a sentence answers the question, from its raw evidence."""
    z = (
        model.bias
        + model.late_interaction * evidence.get("late_interaction", 0.0)
        + model.coverage * evidence.get("coverage", 0.0)
        + model.dense_titled * evidence.get("dense_titled", 0.0)
        + model.ungrounded * evidence.get("ungrounded", 0.0)
    )
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@component
class AnswerBuilder:
    """Builds the answer contract from ranked sentences.

    The best sentence is cited as [1]; further sentences are cited while their score stays within
    `citation_margin` of the best and they are themselves supported. Below the abstention threshold
    the builder abstains instead of guessing.
    """

    def __init__(
        self, max_citations: int = 3, citation_margin: float = 1.0, abstention: dict[str, float] | None = None
    ) -> None:
        self.max_citations, self.citation_margin = max_citations, citation_margin
        self.abstention = AbstentionModel(**(abstention or {}))

    @component.output_types(answer=Answer)
    def run(self, documents: list[Document]) -> dict[str, Any]:
        if not documents:
            return {"answer": Answer(answer=ABSTAIN_MESSAGE, abstained=True, confidence=0.0, citations=[])}
        confidence = support_probability(documents[0].meta.get("evidence", {}), self.abstention)
        if confidence < self.abstention.threshold:
            return {
                "answer": Answer(answer=ABSTAIN_MESSAGE, abstained=True, confidence=round(confidence, 4), citations=[])
            }
        best = documents[0].score or 0.0
        cited = [documents[0]]
        for doc in documents[1:]:
            if len(cited) >= self.max_citations or (doc.score or 0.0) < best - self.citation_margin:
                break
            if support_probability(doc.meta.get("evidence", {}), self.abstention) >= self.abstention.threshold:
                cited.append(doc)
        citations = [
            Citation(
                index=n,
                document_id=d.meta["document_id"],
                source=d.meta["source"],
                text=d.content or "",
                start=d.meta["start"],
                end=d.meta["end"],
                score=round(float(d.score or 0.0), 4),
            )
            for n, d in enumerate(cited, start=1)
        ]
        text = " ".join(f"{c.text} [{c.index}]" for c in citations)
        return {"answer": Answer(answer=text, abstained=False, confidence=round(confidence, 4), citations=citations)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            max_citations=self.max_citations,
            citation_margin=self.citation_margin,
            abstention=self.abstention.model_dump(),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerBuilder:
        return default_from_dict(cls, data)
