"""A conversation turn: history in, answer out, both turns stored. Shared by every chat channel."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from qa_service.contract import Answer, AnswerMode, Turn
from qa_service.conversations import ConversationStore
from qa_service.question_log import QuestionLog
from qa_service.service import QAService

ChatChannel = Literal["web", "slack", "openai"]


@dataclass(frozen=True)
class ChatResult:
    answer: Answer
    conversation_id: str
    turn: int
    collection: str = "default"  # the name of the collection that answered


def answer_deltas(answer: Answer) -> list[str]:
    """The answer as streamable pieces (one per sentence, with its markers); joined, they are exactly
    `answer.answer`. Generated answers are streamed once their citations have been checked."""
    if answer.mode_used.startswith("generative"):
        pieces = re.split(r"(?<=[.!?]) ", answer.answer)
    else:
        pieces = [f"{c.text} [{c.index}]" for c in answer.citations] or [answer.answer]
    return [piece if n == 0 else " " + piece for n, piece in enumerate(pieces)]


def converse(
    service: QAService,
    conversations: ConversationStore,
    message: str,
    conversation_id: str | None = None,
    history: list[Turn] | None = None,
    mode: AnswerMode | None = None,
    on_sentence: Callable[[str], None] | None = None,
    questions: QuestionLog | None = None,
    channel: ChatChannel = "web",
    collection: str = "default",
) -> ChatResult:
    """Answer `message` from `collection` (a name; the caller has checked that it may ask it) in its
    conversation of `channel`. Every answer is recorded in `questions` (the admin page's question log)
    when one is given.

    - "web" (HTTP API, widget): continues `conversation_id` when this channel and collection have it;
      an unknown, expired, other channel's or other collection's id starts a new conversation under an
      id the server picks, so ids stay unguessable and no channel or collection reads or writes another's.
    - "slack": `conversation_id` is the thread's; it is created on the first question.
    - "openai": the client sends `history` (its `messages`) and nothing is stored (turn 0).
    """
    message = service.check_message(message)  # stored as answered: stripped and bounded
    target = service.collection(collection)
    stored = None
    if channel != "openai" and conversation_id:
        stored = conversations.get(conversations.check_id(conversation_id), channel, target.id)
    if channel != "openai" and (conversation_id is None or (stored is None and channel == "web")):
        conversation_id = conversations.new_id()
    if history is None:
        history = [Turn(role=t.role, content=t.content, answer=t.answer) for t in stored.turns] if stored else []
    started = time.perf_counter()
    answer = service.ask(message, history=history, mode=mode, on_sentence=on_sentence, collection=target.name)
    latency_ms = (time.perf_counter() - started) * 1000
    conversation_id, turn = conversation_id or "", 0
    if channel != "openai":
        _, turn = conversations.append(
            conversation_id,
            Turn(role="user", content=message),
            Turn(role="assistant", content=answer.answer, answer=answer),
            channel=channel,
            collection=target.id,
        )
    if questions is not None:
        questions.record(conversation_id, turn, message, answer, latency_ms, collection=target.id)
    return ChatResult(answer, conversation_id, turn, target.name)


def stream_chat(
    service: QAService,
    conversations: ConversationStore,
    message: str,
    conversation_id: str | None = None,
    history: list[Turn] | None = None,
    mode: AnswerMode | None = None,
    questions: QuestionLog | None = None,
    channel: ChatChannel = "web",
    collection: str = "default",
) -> Iterator[str | ChatResult]:
    """`converse`, streamed: yields the answer's text deltas as they are ready, then the ChatResult.

    A generative answer's sentences arrive while the model writes (each once its citations check out);
    an extractive answer (or a fallback, when nothing was streamed) is sent in pieces once it is done.
    Joined, the deltas are exactly the final answer. Errors are raised from the generator."""
    pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            result = converse(
                service,
                conversations,
                message,
                conversation_id,
                history,
                mode,
                on_sentence=lambda s: pieces.put(("sentence", s)),
                questions=questions,
                channel=channel,
                collection=collection,
            )
            pieces.put(("done", result))
        except BaseException as exc:  # handed to the consumer
            pieces.put(("error", exc))

    threading.Thread(target=work, name="chat-stream", daemon=True).start()
    sent = 0
    while True:
        kind, value = pieces.get()
        if kind == "sentence":
            yield value if sent == 0 else " " + value
            sent += 1
        elif kind == "error":
            raise value
        else:
            if sent == 0:
                yield from answer_deltas(value.answer)
            yield value
            return
