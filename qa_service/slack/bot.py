"""The slack-bolt app: mentions and DMs answered in thread, `/ask`, feedback and share buttons.

Bolt acknowledges events before the listeners run (Slack's 3-second limit); commands and actions
call `ack()` first. A thread is one conversation, so follow-ups in a thread use its history.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from qa_service.chat import converse
from qa_service.conversations import ConversationStore
from qa_service.errors import CollectionNotFoundError, InvalidInputError
from qa_service.question_log import QuestionLog
from qa_service.service import QAService
from qa_service.settings import Settings

if TYPE_CHECKING:
    from qa_service.shared_state import EventLog
from qa_service.slack.blocks import FEEDBACK_DOWN, FEEDBACK_UP, SHARE, answer_blocks, fallback_text, share_text
from qa_service.slack.channels import ChannelMap

logger = logging.getLogger(__name__)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
APOLOGY = "Sorry, something went wrong while answering. Please try again in a moment."
HINT = "Ask me a question about the documents, e.g. `/ask How many troops withdrew from Kherson?`"
UNMAPPED = (
    "This channel is not connected to a collection of documents, so I cannot answer here. "
    "An admin can connect it with `PUT /v1/slack/channels/<channel id>`."
)
NO_DIRECT = "I do not answer direct messages here; ask in a channel that is connected to the documents."
GONE = "The collection this channel asks no longer exists; an admin can connect the channel to another one."


class SeenEvents:
    """Event ids already accepted, so Slack's retries (X-Slack-Retry-Num) are answered once."""

    def __init__(self, ttl_seconds: float = 3600, capacity: int = 50_000) -> None:
        self.ttl, self.capacity = ttl_seconds, capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        """True the first time `event_id` is seen (per process)."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self.ttl or len(self._seen) > self.capacity):
                self._seen.popitem(last=False)
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            return True


def thread_conversation_id(channel: str, thread_ts: str, collection_id: str = "default") -> str:
    """The conversation of a thread, per collection: remapping the channel starts new conversations."""
    prefix = "slack" if collection_id == "default" else f"slack-{collection_id}"
    return f"{prefix}-{channel}-{thread_ts.replace('.', '_')}"[:64]


def build_slack_app(
    settings: Settings,
    service: QAService,
    conversations: ConversationStore,
    client: WebClient | None = None,
    seen: EventLog | None = None,
    questions: QuestionLog | None = None,
    channels: ChannelMap | None = None,
) -> App:
    """The Bolt app; `seen` remembers accepted event ids (in PostgreSQL when replicas share them);
    `channels` says which collection each channel asks (see `qa_service.slack.channels`)."""
    if settings.slack_bot_token is None or settings.slack_signing_secret is None:
        raise InvalidInputError("Slack needs QA_SLACK_BOT_TOKEN and QA_SLACK_SIGNING_SECRET.")
    client = client or WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)],
    )
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        token_verification_enabled=False,
        logger=logger,
    )
    seen = seen or SeenEvents()
    channel_map = channels

    def collection_of(channel: str, direct: bool) -> tuple[str | None, str]:
        """(collection name, collection id) the channel asks, or (None, refusal text)."""
        name = channel_map.collection_for(channel, direct) if channel_map else "default"
        if name is None:
            return None, NO_DIRECT if direct else UNMAPPED
        try:
            return name, service.collection(name).id
        except CollectionNotFoundError:
            return None, GONE

    @app.middleware
    def drop_retries(body: dict[str, Any], next: Any) -> BoltResponse | None:
        event_id = body.get("event_id")
        if event_id and not seen.first_time(str(event_id)):
            logger.info("Ignoring a retried Slack event %s", event_id)
            return BoltResponse(status=200, body="")
        return next()

    def answer_in_thread(event: dict[str, Any], question: str) -> None:
        channel = event["channel"]
        thread_ts = event.get("thread_ts") or event["ts"]
        try:
            if not question:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=HINT)
                return
            collection, collection_id = collection_of(channel, event.get("channel_type") == "im")
            if collection is None:
                client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=collection_id)
                return
            result = converse(
                service,
                conversations,
                question,
                thread_conversation_id(channel, thread_ts, collection_id),
                questions=questions,
                channel="slack",
                collection=collection,
            )
            client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=fallback_text(result.answer),
                blocks=answer_blocks(result.answer, result.conversation_id, result.turn),
            )
        except Exception:
            logger.exception("Answering a Slack message failed")
            client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=APOLOGY)

    @app.event("app_mention")
    def on_mention(event: dict[str, Any]) -> None:
        if event.get("bot_id"):
            return
        answer_in_thread(event, _MENTION.sub("", event.get("text", "")).strip())

    @app.event("message")
    def on_message(event: dict[str, Any]) -> None:
        if event.get("channel_type") != "im" or event.get("bot_id") or event.get("subtype"):
            return  # channel messages arrive as app_mention; edits, joins and bots are ignored
        answer_in_thread(event, _MENTION.sub("", event.get("text", "")).strip())

    @app.command("/ask")
    def on_ask(ack: Any, command: dict[str, Any]) -> None:
        ack()
        channel, user, question = command["channel_id"], command["user_id"], command.get("text", "").strip()
        try:
            if not question:
                client.chat_postEphemeral(channel=channel, user=user, text=HINT)
                return
            collection, refusal = collection_of(channel, command.get("channel_name") == "directmessage")
            if collection is None:
                client.chat_postEphemeral(channel=channel, user=user, text=refusal)
                return
            result = converse(
                service,
                conversations,
                question,
                f"slack-cmd-{uuid.uuid4().hex}",
                questions=questions,
                channel="slack",
                collection=collection,
            )
            client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=fallback_text(result.answer),
                blocks=answer_blocks(result.answer, result.conversation_id, result.turn, share=True, question=question),
            )
        except Exception:
            logger.exception("Answering /ask failed")
            client.chat_postEphemeral(channel=channel, user=user, text=APOLOGY)

    @app.action(SHARE)
    def on_share(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        ref = json.loads(action["value"])
        conversation = conversations.get(ref["c"], "slack")
        if conversation is None:
            return
        turns = {t.turn: t for t in conversation.turns}
        answer, question = turns[ref["t"]].answer, turns[ref["t"] - 1].content
        if answer is None:
            return
        user = body["user"]["id"]
        client.chat_postMessage(
            channel=body["channel"]["id"],
            text=share_text(user, question),
            blocks=answer_blocks(answer, ref["c"], ref["t"], question=question),
        )

    def on_feedback(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        ref = json.loads(action["value"])
        rating = "up" if action["action_id"] == FEEDBACK_UP else "down"
        conversations.add_feedback(ref["c"], ref["t"], rating, f"slack user {body['user']['id']}", "slack")
        client.chat_postEphemeral(
            channel=body["channel"]["id"], user=body["user"]["id"], text="Thanks for the feedback!"
        )

    app.action(FEEDBACK_UP)(on_feedback)
    app.action(FEEDBACK_DOWN)(on_feedback)
    return app
