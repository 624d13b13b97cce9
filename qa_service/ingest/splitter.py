"""Haystack component: source documents -> sentence and passage documents with offsets."""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.ingest.segmentation import group_passages, split_sentences


@component
class SentenceSplitter:
    """Splits each document into sentences (the citable unit) and passages (their context).

    Input documents need `meta["document_id"]` and `meta["source"]`. Every output document carries
    `document_id`, `source`, `start`, `end` (offsets into the source text) and `passage_index`.
    """

    def __init__(self, passage_max_words: int = 200) -> None:
        self.passage_max_words = passage_max_words

    @component.output_types(sentences=list[Document], passages=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        sentences: list[Document] = []
        passages: list[Document] = []
        for doc in documents:
            text = doc.content or ""
            doc_id, source, title = doc.meta["document_id"], doc.meta["source"], doc.meta.get("title")
            spans = split_sentences(text)
            passage_of = group_passages(text, spans, self.passage_max_words)
            bounds: dict[int, list[int]] = {}
            for k, ((span, _block), p) in enumerate(zip(spans, passage_of, strict=True)):
                meta = {
                    "document_id": doc_id,
                    "source": source,
                    "start": span.start,
                    "end": span.end,
                    "sentence_index": k,
                    "passage_index": p,
                    "title": title,
                }
                sentences.append(Document(id=f"{doc_id}:s{k}", content=text[span.start : span.end], meta=meta))
                bound = bounds.setdefault(p, [span.start, span.end])
                bound[1] = span.end
            for p, (start, end) in bounds.items():
                meta = {
                    "document_id": doc_id,
                    "source": source,
                    "start": start,
                    "end": end,
                    "passage_index": p,
                    "title": title,
                }
                passages.append(Document(id=f"{doc_id}:p{p}", content=text[start:end], meta=meta))
        return {"sentences": sentences, "passages": passages}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, passage_max_words=self.passage_max_words)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentenceSplitter:
        return default_from_dict(cls, data)
