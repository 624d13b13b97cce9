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


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in escape(text).splitlines() or [""])


def answer_blocks(
    answer: Answer, conversation_id: str, turn: int, share: bool = False, question: str | None = None
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if question:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"*Q:* {escape(question)}"}]})
    if answer.abstained:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": ABSTAIN_TEXT}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(answer.answer)}})
        for c in answer.citations:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*[{c.index}]* {_quote(c.text)}\n_{escape(c.source)}_"},
                }
            )
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
    """Plain text for notifications and clients without blocks."""
    return ABSTAIN_TEXT if answer.abstained else answer.answer
