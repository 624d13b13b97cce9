"""Grounding: does the cited sentence's document hold the specific things the question names?

A question about a place, person, organisation, number or date that the document never mentions
("How many troops withdrew from Kyiv?" against an article that only says Kherson) cannot be
answered by that document, however many of its other words match. `ungrounded_names` lists the
question's names and numbers that the document does not contain, so the abstention model can
refuse such questions. Matching is lenient where writing varies: case, plural and possessive
endings, thousands separators, and acronyms of the document's own multi-word names ("EU" for
"European Union").
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.lexical import STOPWORDS, stem
from qa_service.store.protocol import SentenceStore, store_from_dict

# Capitalised words (not the question's first word) and tokens that contain a digit.
_NAME = re.compile(r"\b(?:[A-Z][\w'’.-]*\w|[A-Z]|\w*\d[\w,.]*\w|\d)\b")
_WORD = re.compile(r"\w+", re.UNICODE)
_CAPITALISED_RUN = re.compile(r"\b[A-Z][\w'-]*(?:\s+(?:of|the|and|for|de|du|von)?\s*[A-Z][\w'-]*)+")
# Capitalised words that are not names (question words and function words written at a title's start).
_NOT_NAMES = frozenset(
    """
    i what which who whom whose when where why how did do does is are was were the a an in on at of for by
    with from to and or if can could would should will may might must has have had there this that these
    those it its he she they his her their we you our your according
    """.split()
)
MAX_NAMES = 12  # bounded work for any question
MAX_UNGROUNDED = 3


def _normal(token: str) -> str:
    token = token.lower().rstrip(".")
    if any(ch.isdigit() for ch in token):
        return re.sub(r"(?<=\d)s$", "", token.replace(",", ""))  # 1970s -> 1970
    return stem(token)


def question_names(question: str) -> list[str]:
    """The question's names and numbers, in order, without its first word (capitalised anyway)."""
    text = question.strip()
    first = _WORD.match(text)
    skip_until = first.end() if first else 0
    names = []
    for match in _NAME.finditer(text):
        if match.start() < skip_until:
            continue
        word = match.group(0)
        if word.lower() in _NOT_NAMES:
            continue
        names.append(word)
        if len(names) >= MAX_NAMES:
            break
    return list(dict.fromkeys(names))


_FOCUS = re.compile(
    r"\b(?i:how) (?:many|much) ([A-Z][\w'-]* )?([a-z][\w'-]*)|\b(?i:what) (?:is|was|are|were) the ([a-z][\w'-]*) of\b"
)


def question_focus(question: str) -> str | None:
    """The thing a question counts or asks an attribute of: "How many *tanks* did ...", "How many
    Russian *generals* ..." (a capitalised modifier is skipped), "What is the *population* of ...".
    A corpus can only answer such a question if it mentions that thing at all."""
    match = _FOCUS.search(question.strip())
    if match is None:
        return None
    head = (match.group(2) or match.group(3)).lower()
    return None if head in _NOT_NAMES or head in STOPWORDS else head


def word_forms(word: str) -> list[str]:
    """The stems a word can be indexed under ("refugees" -> refuge, refugee)."""
    forms = [stem(word), word]
    if word.endswith("s"):
        forms.append(stem(word[:-1]))
    return list(dict.fromkeys(forms))


def document_vocabulary(text: str) -> frozenset[str]:
    """Normalised words of a document, plus the acronyms of its capitalised multi-word names."""
    words = {_normal(w) for w in _WORD.findall(text)}
    words |= {_normal(w.replace(",", "")) for w in re.findall(r"\d[\d,]*\d", text)}
    for run in _CAPITALISED_RUN.findall(text):
        initials = "".join(w[0] for w in run.split() if w[0].isupper() and w.lower() not in _NOT_NAMES)
        if len(initials) >= 2:
            words.add(initials.lower())
    return frozenset(words)


def is_grounded(name: str, vocabulary: frozenset[str]) -> bool:
    """Whether the document (its `vocabulary`) mentions `name`: a possessive counts as the name, and
    a hyphenated or dotted token is grounded when each of its parts is."""
    bare = re.sub(r"['’]s?$", "", name)  # possessive: Warsaw's -> Warsaw
    parts = [p for p in re.split(r"[-'’.]", bare) if p] if not any(c.isdigit() for c in bare) else [bare]
    return all(_normal(p) in vocabulary for p in parts)


def ungrounded_names(question: str, vocabulary: frozenset[str]) -> list[str]:
    """The question's names and numbers that the document (its `vocabulary`) never mentions."""
    return [name for name in question_names(question) if not is_grounded(name, vocabulary)]


@component
class GroundingChecker:
    """Adds `evidence["ungrounded"]` to the best `check` ranked sentences: how many of the question's
    names and numbers the sentence's document never mentions, plus one when the thing the question
    counts or asks about (`question_focus`) appears nowhere in the corpus; at most 3."""

    def __init__(self, document_store: SentenceStore, check: int = 3, cache_size: int = 256) -> None:
        self.document_store, self.check, self.cache_size = document_store, check, cache_size
        self._vocabularies: OrderedDict[tuple[str, bytes], frozenset[str]] = OrderedDict()
        self._lock = threading.Lock()

    def _vocabulary(self, document_id: str, source: str) -> frozenset[str]:
        text = self.document_store.document_text(document_id) or ""
        key = (document_id, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
        with self._lock:
            found = self._vocabularies.get(key)
            if found is not None:
                self._vocabularies.move_to_end(key)
                return found
        vocabulary = document_vocabulary(f"{source}\n{text}")
        with self._lock:
            self._vocabularies[key] = vocabulary
            while len(self._vocabularies) > self.cache_size:
                self._vocabularies.popitem(last=False)
        return vocabulary

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document]) -> dict[str, list[Document]]:
        focus = question_focus(query)
        absent_focus = focus is not None and not any(self.document_store.term_frequencies(word_forms(focus)).values())
        names = question_names(query)
        for doc in documents[: self.check]:
            missing = [focus] if absent_focus and focus else []
            if names:
                vocabulary = self._vocabulary(doc.meta["document_id"], doc.meta.get("source", ""))
                missing += ungrounded_names(query, vocabulary)
            doc.meta.setdefault("evidence", {})["ungrounded"] = float(min(len(missing), MAX_UNGROUNDED))
            doc.meta["ungrounded"] = missing
        return {"documents": documents}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, document_store=self.document_store.to_dict(), check=self.check, cache_size=self.cache_size
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundingChecker:
        params = data["init_parameters"]
        params["document_store"] = store_from_dict(params["document_store"])
        return default_from_dict(cls, data)
