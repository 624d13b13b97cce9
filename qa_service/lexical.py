"""Cheap lexical evidence used by sentence selection: term coverage and expected answer type."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = frozenset(
    """
    a an the of in on at to for by with from and or is are was were be been being what which who
    whom whose when where why how did do does done that this these those it its as into than then
    there their they he she his her i you we our your not no can could would should will shall may
    might must has have had about over under also any some such
    """.split()
)
_NUMBER = re.compile(
    r"\b(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|hundreds|thousand|thousands|million|millions|billion|dozen|dozens|several|half)\b"
)
_DATE = re.compile(
    r"\b(1\d{3}|20\d{2}|\d{1,2}(st|nd|rd|th) century|century|centuries|\d{4}s|january|february|march|april|may|"
    r"june|july|august|september|october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|today|yesterday)\b"
)
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower())]


_CACHED_TEXT_CHARS = 4096  # longer texts are not cached: the cache's keys stay bounded in size


def content_terms(text: str) -> frozenset[str]:
    """Cached: candidate sentences recur across questions, and this runs for each of them."""
    if len(text) > _CACHED_TEXT_CHARS:
        return _content_terms.__wrapped__(text)
    return _content_terms(text)


@lru_cache(maxsize=32768)
def _content_terms(text: str) -> frozenset[str]:
    return frozenset(t for t in terms(text) if t not in STOPWORDS)


def coverages(
    query_terms: frozenset[str], sentences_terms: list[frozenset[str]], idf: Callable[[str], float]
) -> list[float]:
    """For each sentence, the share of the question's content (IDF-weighted) it contains, in [0, 1];
    each question term's IDF is computed once, not once a sentence."""
    weighted = [(t, idf(t)) for t in query_terms]
    total = sum(w for _, w in weighted)
    if total <= 0:
        return [0.0] * len(sentences_terms)
    return [sum(w for t, w in weighted if t in terms) / total for terms in sentences_terms]


def smoothed_idf(document_frequency: int, total: int) -> float:
    return math.log(1 + (total - document_frequency + 0.5) / (document_frequency + 0.5))


def expected_answer_type(question: str) -> str | None:
    lowered = question.lower()
    if re.search(r"\b(when|what year|which year|what century|what decade|what date|what day)\b", lowered):
        return "date"
    if re.search(
        r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat (percentage|percent|number|amount)\b", lowered
    ):
        return "number"
    if re.search(r"\b(who|whom|whose)\b", lowered):
        return "person"
    return None


def matches_answer_type(answer_type: str | None, question: str, sentence: str) -> bool:
    """Whether the sentence contains something of the kind the question asks for."""
    if answer_type == "date":
        return bool(_DATE.search(sentence.lower()))
    if answer_type == "number":
        return bool(_NUMBER.search(sentence.lower()))
    if answer_type == "person":
        asked = set(_CAPITALISED.findall(question))
        return bool(set(_CAPITALISED.findall(sentence[1:])) - asked)
    return False
