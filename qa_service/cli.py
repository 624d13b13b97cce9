"""`qa-service` command line: index, ask, serve, eval. Translates to and from QAService."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa_service.cli_collections import collections_app
from qa_service.cli_common import DEFAULT_COLLECTION, CollectionOpt, IndexDir
from qa_service.cli_common import fail as _fail
from qa_service.cli_common import settings_for as _settings
from qa_service.cli_eval import eval_app
from qa_service.errors import CollectionNotFoundError, QAServiceError
from qa_service.settings import Settings

app = typer.Typer(help="Sentence-cited question answering over your documents.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(collections_app, name="collections")


def _missing_collection(exc: CollectionNotFoundError, name: str) -> typer.Exit:
    typer.secho(f"Error: {exc} Create it first: `qa-service collections create {name}`.", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


@app.command()
def index(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: QA_SEEDS_DIR).")] = None,
    index_dir: IndexDir = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
) -> None:
    """Index files (.txt .md .html .pdf .docx .pptx .xlsx .csv) into a collection: new and changed ones
    are embedded, unchanged ones skipped, and documents whose file disappeared from these paths removed."""
    from rich.progress import Progress

    from qa_service.service import QAService

    settings = _settings(index_dir)
    try:
        service = QAService(settings)
        service.collection(collection)  # refused before any work when it does not exist
        with Progress(transient=True) as progress:
            task = progress.add_task("Indexing", total=None)
            report = service.index_paths(
                paths or [settings.seeds_dir],
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                collection=collection,
            )
    except CollectionNotFoundError as exc:
        raise _missing_collection(exc, collection) from exc
    except QAServiceError as exc:
        raise _fail(exc) from exc
    where = settings.index_dir if collection == DEFAULT_COLLECTION else f"{settings.index_dir} ({collection})"
    typer.echo(
        f"Indexed into {where}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed, {report.sentences} sentences "
        f"in {report.seconds:.1f}s."
    )
    for failure in report.failed:
        typer.secho(f"Skipped {failure}", err=True, fg=typer.colors.YELLOW)
    if report.failed:
        raise typer.Exit(code=1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer contract as JSON.")] = False,
    index_dir: IndexDir = None,
    collection: CollectionOpt = DEFAULT_COLLECTION,
) -> None:
    """Answer a question from one collection of the index, citing the source sentences."""
    from qa_service.service import QAService

    settings = _settings(index_dir)
    try:
        answer = QAService(settings, create_index=False).ask(question, collection=collection)
    except QAServiceError as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(answer.model_dump_json(indent=2))
        return
    typer.echo(answer.answer)
    for c in answer.citations:
        where = f"{c.source}, {c.location}" if c.location else c.source
        typer.echo(f"  [{c.index}] {where} ({c.start}-{c.end}): {c.text}")
    typer.echo(f"confidence: {answer.confidence:.2f}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default QA_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default QA_PORT or 8000).")] = None,
    index_dir: IndexDir = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default QA_WORKERS or 1); see README Performance.")
    ] = None,
) -> None:
    """Serve the HTTP API."""
    import os

    import uvicorn

    from qa_service.api.app import create_app
    from qa_service.api.observability import configure_logging
    from qa_service.api.workers import serve as serve_workers

    settings = _settings(index_dir)
    configure_logging(settings.log_json)
    workers = workers or settings.workers
    bind = {
        "host": host or settings.host,
        "port": port or settings.port,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,  # the client address is the app's to decide (QA_TRUSTED_PROXIES)
    }
    settings = settings.model_copy(update={"host": bind["host"]})  # e.g. /mcp guards Host headers on loopback only
    if workers == 1:
        uvicorn.run(create_app(settings), **bind)  # type: ignore[arg-type]
        return
    # Each worker process builds its app from the environment: pass on what the options changed.
    os.environ["QA_INDEX_DIR"] = str(settings.index_dir)
    os.environ["QA_HOST"] = str(bind["host"])
    os.environ["QA_WORKERS"] = str(workers)  # each worker's share of the cores (QA_MAX_CONCURRENT_ANSWERS)
    serve_workers(workers, **bind)  # new connections go to the worker holding the fewest


@app.command()
def slack(index_dir: IndexDir = None) -> None:
    """Run the Slack bot over Socket Mode (no public URL needed): needs QA_SLACK_BOT_TOKEN,
    QA_SLACK_SIGNING_SECRET and the app-level token QA_SLACK_APP_TOKEN."""
    from qa_service.api.observability import configure_logging
    from qa_service.service import QAService
    from qa_service.shared_state import open_state

    settings = _settings(index_dir)
    if settings.slack_app_token is None or settings.slack_bot_token is None or settings.slack_signing_secret is None:
        typer.secho(
            "Error: Socket Mode needs QA_SLACK_APP_TOKEN (xapp-...), QA_SLACK_BOT_TOKEN (xoxb-...) and "
            "QA_SLACK_SIGNING_SECRET.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=2)
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from qa_service.slack.bot import build_slack_app

    configure_logging(settings.log_json)
    try:
        service = QAService(settings, create_index=False)
    except QAServiceError as exc:
        raise _fail(exc) from exc
    shared = open_state(settings)
    bot = build_slack_app(
        settings,
        service,
        shared.conversations,
        seen=shared.slack_events,
        questions=shared.questions,
        channels=shared.slack_channels,
    )
    SocketModeHandler(bot, settings.slack_app_token.get_secret_value()).start()


@app.command()
def mcp(index_dir: IndexDir = None) -> None:
    """Serve the MCP tools (ask, search, get_context, list_documents) over stdio, for desktop AI
    clients (Claude Desktop, Cursor, VS Code). Logs go to stderr; stdout carries the protocol."""
    import logging
    import sys

    from qa_service.mcp_server import ChatResources, build_mcp_server
    from qa_service.service import QAService
    from qa_service.shared_state import open_state

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    settings = _settings(index_dir)
    try:
        service = QAService(settings, create_index=False)
    except QAServiceError as exc:
        raise _fail(exc) from exc
    shared = open_state(settings)
    resources = ChatResources(service, shared.conversations, shared.questions)
    try:
        build_mcp_server(lambda: resources).run("stdio")
    finally:
        shared.close()
        service.store.close()


@app.command()
def bench(
    squad: Annotated[
        Path, typer.Option(help="SQuAD subset (corpus and questions).", exists=True, dir_okay=False)
    ] = Path("../shared/eval/squad2-dev-subset.json"),
    out: Annotated[Path, typer.Option(help="Report directory (report.json, report.md, latency.png).")] = Path(
        "bench-results"
    ),
    reference_python: Annotated[
        Path | None, typer.Option(help="Python of the reference pipeline's venv (bench/reference); omit to skip it.")
    ] = None,
    synthetic: Annotated[int, typer.Option(min=0, help="Sentences of the synthetic indexing corpus.")] = 20_000,
    requests: Annotated[int, typer.Option(min=1, help="Measured HTTP requests per concurrency level.")] = 1200,
    warmup: Annotated[int, typer.Option(min=0, help="Unmeasured requests before each level.")] = 50,
    concurrency: Annotated[str, typer.Option(help="Comma-separated concurrency levels.")] = "1,8,32,64",
    eval_limit: Annotated[int | None, typer.Option(min=1, help="Evaluate on N questions only.")] = None,
    scale: Annotated[int, typer.Option(min=0, help="Sentences of the scale test (0 skips it).")] = 0,
    setting: Annotated[list[str] | None, typer.Option(help="Our settings as NAME=VALUE (repeatable).")] = None,
    scale_setting: Annotated[
        list[str] | None, typer.Option(help="Settings for the scale test only, NAME=VALUE (repeatable).")
    ] = None,
    parts: Annotated[
        str,
        typer.Option(
            help="Comma-separated parts to run: compare, eval, collections, scale (others keep earlier results)."
        ),
    ] = "compare,eval,scale",
    workers: Annotated[int, typer.Option(min=1, help="Also serve ours with N worker processes (1: skip).")] = 2,
) -> None:
    """Benchmark ours against the reference Haystack pipeline; writes JSON, markdown and a PNG plot."""
    from qa_service.benchmark.runner import BenchConfig, run_benchmark

    def pairs(items: list[str] | None) -> dict[str, str]:
        return dict(item.split("=", 1) for item in items or [])

    config = BenchConfig(
        out_dir=out,
        squad=squad,
        seeds=Settings().seeds_dir,
        reference_python=reference_python,
        synthetic_sentences=synthetic,
        concurrency=tuple(int(c) for c in concurrency.split(",")),
        requests_per_level=requests,
        warmup=warmup,
        eval_limit=eval_limit,
        scale_sentences=scale,
        settings=pairs(setting),
        scale_settings=pairs(scale_setting),
        parts=tuple(p.strip() for p in parts.split(",") if p.strip()),
        workers=workers,
        log=typer.echo,
    )
    paths = run_benchmark(config)
    typer.echo(paths["markdown"].read_text())
    typer.echo(f"Report: {paths['json']}, {paths['markdown']}, {paths['plot']}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
