"""The generative answer: an OpenAI-compatible chat model writes from the ranked sentences, and only
what passes citation enforcement reaches the user; anything else falls back to the extractive answer.

Any server that speaks the OpenAI chat API works (Ollama, vLLM, llama.cpp's server, OpenAI): Haystack's
`OpenAIChatGenerator` with `QA_LLM_BASE_URL`, `QA_LLM_MODEL` and the key from `QA_LLM_API_KEY`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage, StreamingChunk
from haystack.utils import Secret, deserialize_secrets_inplace

from qa_service.contract import Answer, Citation
from qa_service.generation.citations import CitationChecker, SentenceStream, check_citations, fence
from qa_service.generation.prompts import Prompts, load_prompts

logger = logging.getLogger(__name__)

DEFAULT_API_KEY = Secret.from_env_var("QA_LLM_API_KEY", strict=False)
_DONT_KNOW = re.compile(r"^\W*i\s+don'?t\s+know\W*$", re.IGNORECASE)


def _cited_answer(text: str, sources: list[int], documents: list[Document], extractive: Answer) -> Answer:
    citations = []
    for index, n in enumerate(sources, start=1):
        doc = documents[n - 1]
        citations.append(
            Citation(
                index=index,
                document_id=str(doc.meta["document_id"]),
                source=str(doc.meta["source"]),
                text=doc.content or "",
                start=int(doc.meta["start"]),
                end=int(doc.meta["end"]),
                score=float(doc.score or 0.0),
            )
        )
    return Answer(answer=text, abstained=False, confidence=extractive.confidence, citations=citations)


@component
class CitedAnswerGenerator:
    """Ranked sentences + question -> generated answer whose every sentence cites a supporting source.

    Outputs `answer` and `mode_used`: `generative` (kept whole), `generative-trimmed` (some markers or
    sentences removed), or `extractive-fallback` (the extractive answer: the model failed, timed out,
    said it did not know, or wrote nothing the sources support).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: Secret = DEFAULT_API_KEY,
        prompts_dir: str = "prompts",
        sources: int = 8,
        max_sentences: int = 4,
        max_tokens: int = 300,
        timeout: float = 20.0,
    ) -> None:
        self.base_url, self.model, self.api_key, self.prompts_dir = base_url, model, api_key, prompts_dir
        self.sources, self.max_sentences, self.max_tokens, self.timeout = sources, max_sentences, max_tokens, timeout
        self._prompts: Prompts | None = None
        self._llm: OpenAIChatGenerator | None = None

    def warm_up(self) -> None:
        """Load and check the prompt templates; the model server is not called."""
        if self._prompts is None:
            self._prompts = load_prompts(Path(self.prompts_dir))
        if self._llm is None:
            # Local servers need no key, but the OpenAI client insists on one.
            key = self.api_key if self.api_key.resolve_value() else Secret.from_token("no-key")
            self._llm = OpenAIChatGenerator(
                api_key=key,
                model=self.model,
                api_base_url=self.base_url,
                timeout=self.timeout,
                max_retries=0,
                generation_kwargs={"max_tokens": self.max_tokens, "temperature": 0.0},
            )

    @component.output_types(answer=Answer, mode_used=str)
    def run(
        self,
        query: str,
        documents: list[Document],
        extractive: Answer,
        on_sentence: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """`on_sentence` streams: the model's tokens are cut into sentences, and each sentence that
        passes the citation check is handed over (cleaned) as soon as it is complete; joined with
        spaces they are the final answer. Unchecked text is never handed over."""
        self.warm_up()
        assert self._prompts is not None and self._llm is not None
        given = [d for d in documents if d.content][: self.sources]
        if not given:
            return {"answer": extractive, "mode_used": "extractive-fallback"}
        texts = [d.content or "" for d in given]
        system, user = self._prompts.render(query, fence(texts), self.max_sentences)
        checker, splitter = CitationChecker(texts), SentenceStream()

        def check(sentences: list[str]) -> None:
            for sentence in sentences:
                cleaned = checker.add(sentence)
                if cleaned is not None and on_sentence is not None:
                    on_sentence(cleaned)

        def on_chunk(chunk: StreamingChunk) -> None:
            check(splitter.feed(chunk.content or ""))

        messages = [ChatMessage.from_system(system), ChatMessage.from_user(user)]
        failed = False
        try:
            replies = self._llm.run(messages=messages, streaming_callback=on_chunk if on_sentence else None)["replies"]
            text = (replies[0].text or "") if replies else ""
        except Exception as exc:  # the model server is optional: any failure means the extractive answer
            logger.warning("Generative answer failed (%s: %s); answering extractively", type(exc).__name__, exc)
            if on_sentence is None or checker.result().outcome == "fallback":
                return {"answer": extractive, "mode_used": "extractive-fallback"}
            text, failed = "", True  # sentences already streamed and checked stand; the rest is lost
        if on_sentence is not None:
            if not failed:
                check(splitter.close())
            checked = checker.result()
            if failed:
                checked = replace(checked, outcome="generative-trimmed")
        elif _DONT_KNOW.match(text):
            return {"answer": extractive, "mode_used": "extractive-fallback"}
        else:
            checked = check_citations(text, texts)
        if checked.outcome == "fallback":
            logger.warning(
                "Generated answer had no supported claim (%d dropped, markers removed: %s); answering extractively",
                len(checked.dropped_claims),
                checked.removed_markers,
            )
            return {"answer": extractive, "mode_used": "extractive-fallback"}
        return {"answer": _cited_answer(checked.text, checked.sources, given, extractive), "mode_used": checked.outcome}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            base_url=self.base_url,
            model=self.model,
            api_key=self.api_key.to_dict(),
            prompts_dir=self.prompts_dir,
            sources=self.sources,
            max_sentences=self.max_sentences,
            max_tokens=self.max_tokens,
            timeout=self.timeout,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CitedAnswerGenerator:
        deserialize_secrets_inplace(data["init_parameters"], keys=["api_key"])
        return default_from_dict(cls, data)
