"""Options and helpers shared by the `qa-service` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa_service.errors import QAServiceError
from qa_service.settings import Settings
from qa_service.store.collections import DEFAULT, NAME_RULE

IndexDir = Annotated[
    Path | None, typer.Option("--index-dir", help="Index directory (default: QA_INDEX_DIR or ./index).")
]
CollectionOpt = Annotated[
    str,
    typer.Option(
        "--collection",
        "-c",
        help=f"The collection ({NAME_RULE}); create one with `qa-service collections create NAME`.",
    ),
]
DEFAULT_COLLECTION = DEFAULT


def settings_for(index_dir: Path | None = None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"index_dir": index_dir}) if index_dir else settings


def fail(exc: QAServiceError) -> typer.Exit:
    typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)
