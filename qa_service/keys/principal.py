"""Who is asking: the `Principal` a request authenticated as, and what it may do with a collection.

Roles (a collection is named by `^[a-z0-9-]{1,64}$`):

- admin: everything (every collection, documents, keys).
- manager: asks and manages the documents of its collections.
- chat: asks its collections.
- anonymous: no key; exists only while QA_CHAT_API_KEY is unset (public chat).

While chat is public (QA_CHAT_API_KEY unset) every principal may also ask the *public* collections
(`default` starts public): a key never has less than no key. With QA_CHAT_API_KEY set, a key asks
its own collections only (admins: all).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from qa_service.errors import ForbiddenError, InvalidInputError
from qa_service.store.collections import DEFAULT
from qa_service.store.collections import validate_name as validate_collection_name

Role = Literal["admin", "manager", "chat"]
PrincipalRole = Literal["admin", "manager", "chat", "anonymous"]
ROLES: tuple[Role, ...] = get_args(Role)
DEFAULT_COLLECTION = DEFAULT
# One message for every out-of-scope case: it says nothing of whether the collection exists.
OUT_OF_SCOPE = "This key may not use that collection."


def validate_scope(role: Role, collections: Iterable[str]) -> tuple[str, ...]:
    """The scope of a new key of `role`, checked: admins name no collection (they have all), managers
    and chat keys name at least one, each valid and listed once. Raises InvalidInputError (422)."""
    if role not in ROLES:
        raise InvalidInputError(f"Invalid role {str(role)[:40]!r}: use one of {', '.join(ROLES)}.")
    names = list(collections)
    if role == "admin" and names:
        raise InvalidInputError("An admin key has every collection: leave 'collections' empty.")
    if role != "admin" and not names:
        raise InvalidInputError(f"A {role} key needs 'collections': the collection names it may use.")
    for name in names:
        validate_collection_name(name)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInputError(f"Collections listed more than once: {', '.join(duplicates)}.")
    return tuple(names)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `key_id` is public (the rate-limit bucket, logs); None for anonymous.
    `public_chat`: whether public collections are open to everyone (QA_CHAT_API_KEY unset)."""

    role: PrincipalRole
    collections: frozenset[str] = frozenset()
    key_id: str | None = None
    public_chat: bool = False

    @classmethod
    def anonymous(cls) -> Principal:
        return cls("anonymous", frozenset(), None, public_chat=True)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def in_scope(self, name: str) -> bool:
        """Whether `name` is one of this principal's own collections (admins: every name)."""
        return self.is_admin or (self.role != "anonymous" and name in self.collections)

    def can_ask(self, name: str, public: bool) -> bool:
        """May ask collection `name`, which is `public` or not."""
        return self.in_scope(name) or (public and self.public_chat)

    def can_manage(self, name: str) -> bool:
        """May upload, list and delete the documents of collection `name`."""
        return self.is_admin or (self.role == "manager" and name in self.collections)

    def require_ask(self, name: str, public_of: Callable[[str], bool | None]) -> None:
        """Raise ForbiddenError (403, always `OUT_OF_SCOPE`) unless this principal may ask `name`.

        Call it BEFORE looking the collection up. `public_of(name)` says whether the collection is
        public (None: no such collection); it is consulted only when the answer depends on it:

        - `name` in scope (admins, keys naming it): allowed without consulting `public_of`; the caller
          then looks the collection up and answers 404 if it does not exist. Only a principal that may
          use the name learns that it does not exist, and it knew the name already.
        - out of scope, public collections closed to this principal (QA_CHAT_API_KEY set): 403 at once,
          existence not consulted.
        - out of scope, public chat: allowed only if `public_of(name)` is True; False (private) and
          None (no such collection) give the same 403, so the status says nothing of what exists.

        A malformed name is a 422 first (it names nothing, so it reveals nothing).
        """
        validate_collection_name(name)
        if self.in_scope(name):
            return
        if not self.public_chat or public_of(name) is not True:
            raise ForbiddenError(OUT_OF_SCOPE)

    def require_manage(self, name: str) -> None:
        """Raise ForbiddenError (403, `OUT_OF_SCOPE`) unless this principal may manage the documents of
        `name`; decided from the scope alone (existence is never consulted), so call it before the
        lookup, which may then answer 404 (only admins and managers naming it get that far)."""
        validate_collection_name(name)
        if not self.can_manage(name):
            raise ForbiddenError(OUT_OF_SCOPE)

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ForbiddenError("This needs an admin key.")
