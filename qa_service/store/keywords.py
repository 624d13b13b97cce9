"""The words a keyword search looks for (both backends)."""

from __future__ import annotations

import re

_FTS_STOPWORDS = frozenset(
    """
    a an and are as at be been by did do does for from had has have he her his how i in is it its of
    on or she that the their them they this to was were what when where which who whom whose why
    will with
    """.split()
)
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 64  # a keyword query is an OR of at most this many words (a question has far fewer)


def keyword_terms(text: str) -> list[str]:
    """The text's first `MAX_QUERY_TERMS` distinct words less stopwords, in order: what keyword search
    looks for (any of them)."""
    found: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group(0)
        if word not in _FTS_STOPWORDS:
            found[word] = None
            if len(found) == MAX_QUERY_TERMS:
                break
    return list(found)
