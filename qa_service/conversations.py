"""Conversation history kept server-side, bounded in size and expiring after an idle TTL."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import OrderedDict

from qa_service.contract import Turn
from qa_service.errors import InvalidInputError

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConversationStore:
    def __init__(self, ttl_seconds: float = 3600, max_conversations: int = 10_000, max_turns: int = 50) -> None:
        self.ttl, self.max_conversations, self.max_turns = ttl_seconds, max_conversations, max_turns
        self._items: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def check_id(conversation_id: str) -> str:
        if not _ID.match(conversation_id):
            raise InvalidInputError("conversation_id must be 1-64 characters of letters, digits, '-' or '_'.")
        return conversation_id

    def history(self, conversation_id: str) -> list[Turn]:
        with self._lock:
            self._expire()
            entry = self._items.get(conversation_id)
            return list(entry[1]) if entry else []

    def append(self, conversation_id: str, *turns: Turn) -> None:
        with self._lock:
            _, existing = self._items.pop(conversation_id, (0.0, []))
            self._items[conversation_id] = (time.monotonic(), [*existing, *turns][-self.max_turns :])
            while len(self._items) > self.max_conversations:
                self._items.popitem(last=False)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.ttl
        while self._items:
            key, (touched, _) = next(iter(self._items.items()))
            if touched >= cutoff:
                break
            del self._items[key]
