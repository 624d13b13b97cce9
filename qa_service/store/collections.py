"""Collection names and ids, shared by both backends' catalogs.

Each collection is its own `SentenceStore` with its own physical storage (a directory of the
embedded index, a schema of the PostgreSQL database): isolation is a property of the store, not a
filter. `default` is the store every index had before collections existed.
"""

from __future__ import annotations

import re

from qa_service.errors import CollectionProtectedError, InvalidInputError

DEFAULT = "default"
NAME_RULE = "1-64 characters of lowercase letters, digits and '-' ([a-z0-9-])"
NAME_PATTERN = r"^[a-z0-9-]{1,64}$"  # also the pattern of every API field and parameter naming one
_NAME = re.compile(NAME_PATTERN)


def validate_name(name: object) -> str:
    """`name` if it is a valid collection name, else InvalidInputError saying the rule."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name)[:80]
        raise InvalidInputError(f"Invalid collection name {shown}: a collection name is {NAME_RULE}.")
    return name


def check_not_default(name: str, action: str) -> None:
    if name == DEFAULT:
        raise CollectionProtectedError(f"The {DEFAULT!r} collection cannot be {action}.")


def collection_document_id(collection_id: str, origin: str) -> str:
    """The id of the document of `origin` in a collection: unchanged in `default` (ids stay what they
    were before collections), else a hash of the collection id with the origin, so that one document
    id names one document across all collections."""
    from qa_service.ingest.sources import document_id

    return document_id(origin if collection_id == DEFAULT else f"collection:{collection_id}:{origin}")


def schema_name(collection_id: str) -> str:
    """The PostgreSQL schema of a collection: `public` for default, `qa_c_<id>` otherwise."""
    if collection_id == DEFAULT:
        return "public"
    if not re.fullmatch(r"[0-9]+", collection_id):
        raise ValueError(f"collection id {collection_id!r}")
    return f"qa_c_{collection_id}"
