"""Block Kit rendering of answers: the answer with [n] markers, then each cited sentence quoted."""

from __future__ import annotations

import json
from typing import Any

from qa_service.contract import Answer

ABSTAIN_TEXT = ":mag: I could not find this in the documents."
FEEDBACK_UP, FEEDBACK_DOWN, SHARE = "qa_feedback_up", "qa_feedback_down", "qa_share"


def escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) as entities, so document text cannot ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


SECTION_LIMIT = 3000  # characters of a section's (or context element's) text Slack accepts
QUOTE_SECTIONS = 4  # a longer cited sentence is cut (with an ellipsis) after this many sections


def _pieces(tokens: list[str], limit: int) -> list[str]:
    """Tokens (an escaped character each, so no entity is ever cut) packed into strings of <= `limit`."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for token in tokens:
        if size + len(token) > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(token)
        size += len(token)
    if current or not pieces:
        pieces.append("".join(current))
    return pieces


def _bounded(text: str, limit: int = SECTION_LIMIT) -> str:
    """`text` escaped, cut to `limit` characters."""
    pieces = _pieces([escape(ch) for ch in text], limit - 1)
    return pieces[0] + ("…" if len(pieces) > 1 else "")


def _quote_sections(index: int, text: str, source: str) -> list[str]:
    """A cited sentence as quoted mrkdwn sections of at most SECTION_LIMIT characters each: the first
    starts with its marker, the last ends with its source; past QUOTE_SECTIONS it is cut."""
    head, tail = f"*[{index}]* ", f"\n_{_bounded(source, 600)}_"
    room = SECTION_LIMIT - len(head) - len(tail) - len("> ") - 1
    tokens = ["\n> " if ch == "\n" else escape(ch) for ch in text.strip()]
    pieces = _pieces(tokens, room)
    if len(pieces) > QUOTE_SECTIONS:
        pieces = [*pieces[: QUOTE_SECTIONS - 1], pieces[QUOTE_SECTIONS - 1][:-1] + "…"]
    sections = ["> " + piece.lstrip("\n> ") if n else "> " + piece for n, piece in enumerate(pieces)]
    sections[0] = head + sections[0]
    sections[-1] += tail
    return sections


def answer_blocks(
    answer: Answer, conversation_id: str, turn: int, share: bool = False, question: str | None = None
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if question:
        text = "*Q:* " + _bounded(question, SECTION_LIMIT - 5)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    if answer.abstained:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ABSTAIN_TEXT}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _bounded(answer.answer)}})
        for c in answer.citations:
            for section in _quote_sections(c.index, c.text, f"{c.source}, {c.location}" if c.location else c.source):
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": section}})
    value = json.dumps({"c": conversation_id, "t": turn})
    actions: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": FEEDBACK_UP,
            "text": {"type": "plain_text", "text": ":+1: Helpful"},
            "value": value,
        },
        {
            "type": "button",
            "action_id": FEEDBACK_DOWN,
            "text": {"type": "plain_text", "text": ":-1: Not helpful"},
            "value": value,
        },
    ]
    if share:
        actions.append(
            {
                "type": "button",
                "action_id": SHARE,
                "style": "primary",
                "value": value,
                "text": {"type": "plain_text", "text": "Share in channel"},
            }
        )
    blocks.append({"type": "actions", "elements": actions})
    return blocks


def fallback_text(answer: Answer) -> str:
    """Text for notifications and clients without blocks (escaped and bounded like the blocks)."""
    return ABSTAIN_TEXT if answer.abstained else _bounded(answer.answer)


def share_text(user: str, question: str) -> str:
    """The text of an answer shared in a channel: who asked (the one mention the bot makes) and what."""
    return f"<@{user}> asked: " + _bounded(question, SECTION_LIMIT - 40)
