"""Enforced citations for generated answers (issue 8's core; not wired to the API yet).

A generated answer is split into sentences (claims). Each claim's `[n]` markers must point at one of
the numbered source sentences the model was given and that source must *support* the claim: every
number in the claim appears in it, and it shares the claim's names and enough of its content words.
Markers that point nowhere or at a non-supporting source are removed; claims left without a
supporting marker are dropped; an answer with no supported claim is a fallback to the extractive
answer. Sources that read like instructions to the model are never counted as support.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from qa_service.ingest.segmentation import split_sentences
from qa_service.lexical import content_terms

_MARKER = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)")
_INSTRUCTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|prompt|above|previous|rules)\b"
    r"|\b(you must|you should|you are now|as an ai|system prompt|answer with|respond with|reply with)\b",
    re.IGNORECASE,
)

_NEGATION = re.compile(
    r"\b(not|no|never|without|none|nobody|nothing|neither|nor|cannot|deny|denies|denied|denying|refuse|refused|"
    r"refuses|refusing)\b|n't\b",
    re.IGNORECASE,
)

Outcome = Literal["generative", "generative-trimmed", "fallback"]


def negated(text: str) -> bool:
    """The text's polarity: an odd number of negations (not, no, never, without, denied, n't, ...)."""
    return len(_NEGATION.findall(text.replace("’", "'"))) % 2 == 1


def numbers(text: str) -> set[str]:
    """Numbers as written, without thousands separators ("20,000" and "20000" are the same)."""
    return {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}


def names(text: str) -> set[str]:
    """Capitalised words that are not a sentence's first word, lower-cased."""
    found: set[str] = set()
    for match in _NAME.finditer(text):
        found.update(w.lower() for w in match.group(1).split())
    return found


def looks_like_instruction(sentence: str) -> bool:
    """A source sentence addressed to the model ("ignore previous instructions ..."): such a sentence is
    shown fenced as data and never counts as support."""
    return bool(_INSTRUCTION.search(sentence))


def supports(claim: str, source: str, min_overlap: float = 0.5) -> bool:
    """Whether `source` holds the claim's key content: all its numbers, all its names, at least
    `min_overlap` of its content words (stemmed), and the same polarity (negation words are stopwords
    to the overlap, so "were not withdrawing" would otherwise pass on "were withdrawing")."""
    if looks_like_instruction(source):
        return False
    if negated(claim) != negated(source):
        return False
    if not numbers(claim) <= numbers(source):
        return False
    source_names = names(source) | {w.lower() for w in re.findall(r"\w+", source)}
    if not names(claim) <= source_names:
        return False
    claim_terms = content_terms(claim)
    if not claim_terms:
        return False
    return len(claim_terms & content_terms(source)) / len(claim_terms) >= min_overlap


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the kept claims, markers renumbered 1..k in order of first use
    sources: list[int]  # 1-based numbers of the sources cited, in the order of the new markers
    outcome: Outcome
    removed_markers: list[int] = field(default_factory=list)  # pointed nowhere or did not support
    dropped_claims: list[str] = field(default_factory=list)  # no supporting citation left


class CitationChecker:
    """Checks a generated answer sentence by sentence, as it streams: `add` returns the sentence
    cleaned (markers renumbered 1..k in order of first use) or None when it is dropped."""

    def __init__(self, sources: list[str], min_overlap: float = 0.5) -> None:
        self.sources, self.min_overlap = sources, min_overlap
        self._order: dict[int, int] = {}
        self._parts: list[str] = []
        self.removed: list[int] = []
        self.dropped: list[str] = []

    def add(self, sentence: str) -> str | None:
        markers = [int(n) for group in _MARKER.findall(sentence) for n in re.split(r"\s*,\s*", group)]
        claim = _MARKER.sub("", sentence).strip()
        if not claim or not re.search(r"\w", claim):
            return None
        good = []
        for n in dict.fromkeys(markers):
            if 1 <= n <= len(self.sources) and supports(claim, self.sources[n - 1], self.min_overlap):
                good.append(n)
            else:
                self.removed.append(n)
        if not good:
            self.dropped.append(claim)
            return None
        for n in good:
            self._order.setdefault(n, len(self._order) + 1)
        marks = "".join(f"[{self._order[n]}]" for n in good)
        cleaned = f"{claim[:-1]} {marks}{claim[-1]}" if claim[-1] in ".!?" else f"{claim} {marks}"
        self._parts.append(cleaned)
        return cleaned

    def result(self) -> CheckedAnswer:
        if not self._parts:
            return CheckedAnswer("", [], "fallback", self.removed, self.dropped)
        outcome: Outcome = "generative-trimmed" if self.dropped or self.removed else "generative"
        return CheckedAnswer(" ".join(self._parts), list(self._order), outcome, self.removed, self.dropped)


def check_citations(answer: str, sources: list[str], min_overlap: float = 0.5) -> CheckedAnswer:
    """Clean a whole generated `answer` against the numbered `sources` (1-based in the prompt)."""
    checker = CitationChecker(sources, min_overlap)
    for span, _ in split_sentences(answer):
        checker.add(answer[span.start : span.end])
    return checker.result()


class SentenceStream:
    """Cuts streamed text into sentences: `feed` returns the sentences completed so far (the last one
    is held back until more text or `close` shows it has ended)."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        spans = split_sentences(self._buffer)
        if len(spans) < 2:
            return []
        cut = spans[-1][0].start
        done = [self._buffer[s.start : s.end] for s, _ in spans[:-1]]
        self._buffer = self._buffer[cut:]
        return done

    def close(self) -> list[str]:
        rest, self._buffer = self._buffer, ""
        return [rest[s.start : s.end] for s, _ in split_sentences(rest)]


def fence(sources: list[str]) -> str:
    """Numbered source sentences inside a fence the prompt tells the model to treat as data only.
    A fence marker inside a source is neutralised so a document cannot close the fence."""
    lines = [f"[{i}] {s.replace('<<<', '‹‹‹').replace('>>>', '›››')}" for i, s in enumerate(sources, start=1)]
    return "<<<SOURCES\n" + "\n".join(lines) + "\nSOURCES>>>"
