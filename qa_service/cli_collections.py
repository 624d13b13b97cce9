"""`qa-service collections ...`: list, create, rename, make public/private and delete collections."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from qa_service.cli_common import IndexDir, fail, settings_for
from qa_service.errors import QAServiceError

if TYPE_CHECKING:
    from qa_service.service import QAService

collections_app = typer.Typer(
    help="Collections: separate sets of documents, each asked on its own.", no_args_is_help=True
)
Name = Annotated[str, typer.Argument(help="Collection name (1-64 characters of [a-z0-9-]).")]


def _service(index_dir: IndexDir, create: bool = False) -> QAService:
    from qa_service.service import QAService

    return QAService(settings_for(index_dir), create_index=create)


@collections_app.command("list")
def list_collections(index_dir: IndexDir = None) -> None:
    """Every collection with its document and sentence counts."""
    try:
        service = _service(index_dir)
        for c in service.collections():
            documents, sentences, _ = service.store_of(c.name).counts()
            access = "public" if c.public else "private"
            typer.echo(f"{c.name}\t{access}\t{documents} documents\t{sentences} sentences\t(id {c.id})")
    except QAServiceError as exc:
        raise fail(exc) from exc


@collections_app.command("create")
def create(
    name: Name,
    public: Annotated[bool, typer.Option("--public", help="Anonymous askers may ask it.")] = False,
    index_dir: IndexDir = None,
) -> None:
    """Create an empty collection (private unless --public); fill it with `qa-service index PATH -c NAME`."""
    try:
        created = _service(index_dir, create=True).create_collection(name, public)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"Created collection {created.name} ({'public' if created.public else 'private'}, id {created.id}).")


@collections_app.command("rename")
def rename(old: Name, new: Name, index_dir: IndexDir = None) -> None:
    """Rename a collection (its documents and id stay; `default` cannot be renamed)."""
    try:
        _service(index_dir).update_collection(old, new_name=new)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"Renamed collection {old} to {new}.")


@collections_app.command("public")
def set_public(
    name: Name,
    public: Annotated[bool, typer.Option("--yes/--no", help="Make it public (--yes) or private (--no).")] = True,
    index_dir: IndexDir = None,
) -> None:
    """Make a collection public (anonymous askers may ask it) or private."""
    try:
        updated = _service(index_dir).update_collection(name, public=public)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"Collection {updated.name} is now {'public' if updated.public else 'private'}.")


@collections_app.command("delete")
def delete(name: Name, index_dir: IndexDir = None) -> None:
    """Delete a collection with all its documents (`default` cannot be deleted). Conversations and
    feedback of a running server's collection are removed through `DELETE /v1/collections/NAME`."""
    try:
        gone = _service(index_dir).delete_collection(name)
    except QAServiceError as exc:
        raise fail(exc) from exc
    typer.echo(f"Deleted collection {gone.name} (id {gone.id}).")
