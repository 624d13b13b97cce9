"""What refers to a collection outside its store, kept in step with renames and deletes: keys' scopes
and the Slack channel map (by name); conversations, feedback and logged questions (by id).

Keys lose a deleted collection first, so a crash midway can only leave less access, never more; the
app's start finishes what a crash (or another replica's delete) left: `reconcile`.
"""

from __future__ import annotations

from qa_service.keys import KeyStore
from qa_service.service import QAService
from qa_service.shared_state import SharedState
from qa_service.store.collections import DEFAULT
from qa_service.store.records import Collection


def rename(
    service: QAService,
    keys: KeyStore,
    shared: SharedState,
    name: str,
    new_name: str | None,
    public: bool | None,
) -> Collection:
    """Rename and/or make public or private; scopes and channel mappings follow a new name."""
    updated = service.update_collection(name, new_name, public)
    if updated.name != name:
        keys.rename_collection(name, updated.name)
        if shared.slack_channels is not None:
            shared.slack_channels.rename_collection(name, updated.name)
    return updated


def delete(service: QAService, keys: KeyStore, shared: SharedState, name: str) -> Collection:
    """Delete a collection with its documents, and everything that refers to it."""
    service.collection(name)  # 404 before any key loses anything
    if name != DEFAULT:  # `default` cannot be deleted (the catalog says so below)
        keys.forget_collection(name)
    gone = service.delete_collection(name)
    shared.forget_collection(gone)
    return gone


def reconcile(service: QAService, keys: KeyStore, shared: SharedState) -> None:
    """Forget what refers to collections that no longer exist."""
    existing = service.collections()
    names = {c.name for c in existing}
    for named in {n for key in keys.list() for n in key.collections} - names:
        keys.forget_collection(named)
    if shared.slack_channels is not None:
        for mapping in shared.slack_channels.mappings():
            if mapping.source == "api" and mapping.collection not in names:
                shared.slack_channels.forget_collection(mapping.collection)
    shared.keep_collections(existing)
