"""`qa-service eval ...`: answer quality on SQuAD files and on your own questions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from qa_service.cli_common import DEFAULT_COLLECTION, IndexDir
from qa_service.cli_common import fail as _fail
from qa_service.cli_common import settings_for as _settings
from qa_service.errors import QAServiceError
from qa_service.settings import Settings

eval_app = typer.Typer(help="Evaluate answer quality on public datasets.", no_args_is_help=True)


@eval_app.command("squad")
def eval_squad(
    file: Annotated[Path, typer.Argument(help="SQuAD (2.0) JSON file.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only N questions, spread evenly over the file.")] = None,
    collection: Annotated[
        str,
        typer.Option(
            "--collection",
            "-c",
            help="Index the paragraphs into a collection of this name inside the temporary index (it checks "
            "that a non-default collection answers as `default` does); your own index is never touched.",
        ),
    ] = DEFAULT_COLLECTION,
) -> None:
    """Index the file's paragraphs into a temporary index and measure sentence-level answer quality."""
    from qa_service.evaluation.squad import evaluate_squad

    try:
        metrics = evaluate_squad(file, Settings(), limit=limit, collection=collection)
    except QAServiceError as exc:
        raise _fail(exc) from exc
    _print_metrics(metrics, as_json)


def _print_metrics(metrics: dict[str, Any], as_json: bool) -> None:
    from qa_service.evaluation.metrics import format_table

    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    for key, value in metrics.items():
        if key not in ("thresholds", "failures"):
            typer.echo(f"{key:32} {value}")
    typer.echo("\n" + format_table(metrics["thresholds"]))
    for failure in metrics.get("failures", []):
        typer.echo(
            f"\nwrong: {failure['question']}\n  expected: {failure['expected']}\n  got: {failure['got']}"
            f" (confidence {failure['confidence']})"
        )


@eval_app.command("questions")
def eval_questions(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: {question, expect} or {question, unanswerable: true}, optionally with history.",
            exists=True,
            dir_okay=False,
        ),
    ],
    index_dir: IndexDir = None,
    documents: Annotated[
        list[Path] | None,
        typer.Option(
            "--documents",
            help="Index these files or folders into a temporary index and ask there (default: ask the existing index).",
            exists=True,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    collection: Annotated[
        str,
        typer.Option(
            "--collection",
            "-c",
            help="Ask this collection of the existing index (default `default`); with --documents the "
            "temporary index gets a collection of this name.",
        ),
    ] = DEFAULT_COLLECTION,
) -> None:
    """Ask your own questions against your own documents: right citations, refusals, AUROC, thresholds."""
    import tempfile

    from qa_service.evaluation.questions import evaluate_questions, load_questions
    from qa_service.service import QAService

    try:
        questions = load_questions(file)
        with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
            settings = _settings(Path(tmp) if documents else index_dir)
            service = QAService(settings, create_index=bool(documents))
            if documents:
                if collection != DEFAULT_COLLECTION:
                    service.create_collection(collection)
                service.index_paths(documents, collection=collection)
            metrics = evaluate_questions(service, questions, collection)
            service.close()
    except QAServiceError as exc:
        raise _fail(exc) from exc
    _print_metrics(metrics, as_json)


@eval_app.command("fit-abstention")
def eval_fit_abstention(
    file: Annotated[Path, typer.Argument(help="The tuning file (never the validation file).", exists=True)],
    answered: Annotated[float, typer.Option(min=0.5, max=1.0, help="Share of answerable questions to answer.")] = 0.95,
) -> None:
    """Refit the abstention model (the defaults of QA_ABSTENTION__*) and print it with its recipe."""
    from qa_service.evaluation.fit_abstention import fit_abstention

    try:
        typer.echo(json.dumps(fit_abstention(file, Settings(), answered), indent=2))
    except QAServiceError as exc:
        raise _fail(exc) from exc


@eval_app.command("support")
def eval_support(
    file: Annotated[Path, typer.Argument(help="SQuAD (2.0) JSON file.", exists=True, dir_okay=False)],
) -> None:
    """Precision and recall of the generative answers' citation check on the file's questions."""
    from qa_service.evaluation.support import evaluate_support

    typer.echo(json.dumps(evaluate_support(file), indent=2))
