"""Offline sentence segmentation (Punkt) with exact character offsets, and passage grouping."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

_BLOCK_BREAK = re.compile(r"\n[ \t]*\n")
# A line that ends with sentence punctuation ends its sentence, whatever Punkt thinks of the word
# before it ("... the end of World War I.\nKherson, in southern Ukraine, ..." is two sentences).
_LINE_END = re.compile(r"[.!?][\"'”’)\]]*(?=[ \t]*\n)")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@lru_cache(maxsize=1)
def _tokenizer():  # type: ignore[no-untyped-def]
    import punkt

    return punkt.PunktSentenceTokenizer(punkt.load_model("english"))


def _blocks(text: str) -> list[Span]:
    """Blank-line separated blocks (paragraphs); sentences never cross them."""
    spans, start = [], 0
    for match in _BLOCK_BREAK.finditer(text):
        spans.append(Span(start, match.start()))
        start = match.end()
    spans.append(Span(start, len(text)))
    return [s for s in spans if text[s.start : s.end].strip()]


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def split_sentences(text: str) -> list[tuple[Span, int]]:
    """Sentences as (span, block number); `text[span.start:span.end]` is the exact sentence."""
    tokenizer = _tokenizer()
    out: list[tuple[Span, int]] = []
    for block_no, block in enumerate(_blocks(text)):
        chunk = text[block.start : block.end]
        for a, b in tokenizer.span_tokenize(chunk):
            cuts = [a, *(m.end() for m in _LINE_END.finditer(chunk, a, b) if m.end() < b), b]
            for start, end in itertools.pairwise(cuts):
                span = _trim(text, block.start + start, block.start + end)
                if span is not None:
                    out.append((span, block_no))
    return out


def group_passages(text: str, sentences: list[tuple[Span, int]], max_words: int) -> list[int]:
    """Passage number of each sentence: consecutive sentences of one block, up to `max_words` words."""
    passage_of: list[int] = []
    passage, words, block = -1, 0, None
    for span, block_no in sentences:
        n = len(text[span.start : span.end].split())
        if block_no != block or words + n > max_words:
            passage, words, block = passage + 1, 0, block_no
        words += n
        passage_of.append(passage)
    return passage_of
