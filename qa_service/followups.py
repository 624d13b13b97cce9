"""Follow-up questions: resolve what a pronoun refers to from the user's earlier questions."""

from __future__ import annotations

import re

from qa_service.lexical import content_terms

_ANAPHORA = frozenset(
    """
    he she it they him her his hers its their theirs them this that these those there then such
    former latter
    """.split()
)
_AUXILIARIES = frozenset("is are was were did does do has have had can could will would should".split())
_PRONOUN = re.compile(r"\b(he|she|they|him|her|them|his|their|hers|theirs)\b", re.IGNORECASE)
_POSSESSIVE = {"his", "their", "hers", "theirs"}
# Capitalised words not at the start of a sentence: the names a pronoun can refer to.
_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*")


def resolve_follow_up(question: str, earlier: list[str]) -> str:
    """A question with a pronoun or few content words is read with what it refers to: the names in
    the user's earlier questions ("What did he say about negotiations?" after "Who is Mark Milley?" ->
    "What did Mark Milley say about negotiations?"), or, when those name nobody, the questions."""
    if not earlier:
        return question
    words = {w.lower().strip("?.,!'\"") for w in question.split()}
    # A short question is a follow-up ("And in September?", "What about Luhansk?"), unless it is a
    # whole question that names its own subject ("What is the capital of France?" is a new one).
    whole = bool(_NAME.search(question) and words & _AUXILIARIES)
    short = len(content_terms(question)) <= 2 and not whole
    if not (words & _ANAPHORA or short):
        return question
    names = list(dict.fromkeys(n for text in earlier for n in _NAME.findall(text) if n.lower() not in words))
    if not names:
        return " ".join([*earlier, question])
    referent = " and ".join(names)
    pronoun = _PRONOUN.search(question)
    if pronoun is None:
        return f"{question} {referent}"
    if pronoun.group(0).lower() in _POSSESSIVE:
        referent += "'s"
    return question[: pronoun.start()] + referent + question[pronoun.end() :]
