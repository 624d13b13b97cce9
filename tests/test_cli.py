import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_service.cli import app
from tests.conftest import index_seeds_for_cli

runner = CliRunner()


@pytest.fixture(autouse=True)
def hash_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_EMBEDDING_MODEL", "hash:64")
    monkeypatch.setenv("QA_ABSTENTION__THRESHOLD", "0")


def test_index_then_ask_json(tmp_path: Path, seeds_copy: Path) -> None:
    index_dir = str(tmp_path / "idx")
    result = runner.invoke(app, ["index", str(seeds_copy), "--index-dir", index_dir])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output
    again = runner.invoke(app, ["index", str(seeds_copy), "--index-dir", index_dir])
    assert "1 unchanged" in again.output
    result = runner.invoke(app, ["ask", "How many troops withdrew from Kherson?", "--json", "--index-dir", index_dir])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert "20,000 to 30,000" in body["citations"][0]["text"] and body["abstained"] is False
    plain = runner.invoke(app, ["ask", "How many troops withdrew from Kherson?", "--index-dir", index_dir])
    assert "[1]" in plain.output and "confidence:" in plain.output


def test_ask_without_index_explains_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ask", "Anything?", "--index-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "qa-service index" in result.output
    assert not (tmp_path / "none").exists()


def test_index_reports_bad_paths(tmp_path: Path) -> None:
    result = runner.invoke(app, ["index", str(tmp_path / "missing"), "--index-dir", str(tmp_path / "i")])
    assert result.exit_code == 2 and "not found" in result.output


def test_eval_squad_on_a_tiny_file(tmp_path: Path) -> None:
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Bridges",
                "paragraphs": [
                    {
                        "context": "The bridge opened in 1932. It is painted red.",
                        "qas": [
                            {
                                "question": "When did the bridge open?",
                                "id": "q1",
                                "is_impossible": False,
                                "answers": [{"text": "1932", "answer_start": 21}],
                            },
                            {"question": "Who painted it?", "id": "q2", "is_impossible": True, "answers": []},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["eval", "squad", str(path), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["top1_sentence_hit"] == 1.0 and metrics["answerable"] == 1 and metrics["unanswerable"] == 1
    for key in (
        "top3_sentence_hit",
        "answered_rate_answerable",
        "abstain_rate_unanswerable",
        "p50_ms",
        "p95_ms",
        "index_seconds",
    ):
        assert key in metrics


@pytest.mark.integration
def test_serve_with_two_worker_processes(tmp_path: Path, seeds_copy: Path) -> None:
    """`serve --workers 2`: both processes answer from the same index and share conversations."""
    import json
    import sys
    import urllib.request

    from qa_service.benchmark.servers import free_port, running

    env = index_seeds_for_cli(tmp_path / "index", seeds_copy, QA_ABSTENTION__THRESHOLD="0")
    port = free_port()
    command = [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port), "--workers", "2"]
    with running(command, port, "/readyz", tmp_path / "server.log", env, timeout=120) as server:
        assert len(server.worker_pids()) >= 2

        def ask(body: dict[str, str]) -> dict[str, object]:
            request = urllib.request.Request(
                server.base_url + "/v1/chat", json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return dict(json.loads(response.read()))

        first = ask({"message": "How many troops withdrew from Kherson?"})
        assert "20,000" in str(first["answer"])
        for _ in range(6):  # connections land on either worker; every one knows the conversation
            follow = ask({"message": "Who said so?", "conversation_id": str(first["conversation_id"])})
            assert follow["conversation_id"] == first["conversation_id"]
        assert follow["turn"] == 14


def test_eval_questions_reports_metrics_and_failures(tmp_path: Path, seeds_copy: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "How many troops withdrew from Kherson?", "expect": "20,000 to 30,000"}\n'
        '{"question": "What is the capital of France?", "unanswerable": true}\n'
        '{"question": "What did he say about negotiations?", "history": ["Who is Mark Milley?"], '
        '"expect": "window of opportunity"}\n'
    )
    result = runner.invoke(app, ["eval", "questions", str(questions), "--documents", str(seeds_copy), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["questions"] == 3 and metrics["answerable"] == 2 and metrics["unanswerable"] == 1
    # QA_ABSTENTION__THRESHOLD=0 here: nothing is refused, so the off-topic question is a failure
    assert metrics["abstain_rate_unanswerable"] == 0.0
    failed = [f["question"] for f in metrics["failures"]]
    assert "What is the capital of France?" in failed and "How many troops withdrew from Kherson?" not in failed
    assert {r["threshold"] for r in metrics["thresholds"]} >= {0.5, 0.8}
    plain = runner.invoke(app, ["eval", "questions", str(questions), "--documents", str(seeds_copy)])
    assert "auroc_right_vs_unanswerable" in plain.output and "wrong: What is the capital of France?" in plain.output


def test_eval_questions_names_the_bad_line(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "ok?", "expect": "x"}\n{"question": "both?", "expect": "x", "unanswerable": true}\n'
    )
    result = runner.invoke(app, ["eval", "questions", str(questions)])
    assert result.exit_code == 2 and "line 2" in result.output and "either" in result.output
    questions.write_text("not json\n")
    result = runner.invoke(app, ["eval", "questions", str(questions)])
    assert result.exit_code == 2 and "line 1" in result.output


# --- collections -------------------------------------------------------------------------------------
def test_collections_create_index_ask_rename_delete(tmp_path: Path, seeds_copy: Path) -> None:
    index_dir = str(tmp_path / "idx")
    hr_docs = tmp_path / "hr"
    hr_docs.mkdir()
    (hr_docs / "leave.txt").write_text("Every employee gets 25 days of paid vacation per year.")

    refused = runner.invoke(app, ["index", str(hr_docs), "--collection", "hr", "--index-dir", index_dir])
    assert refused.exit_code == 2 and "qa-service collections create hr" in refused.output
    created = runner.invoke(app, ["collections", "create", "hr", "--index-dir", index_dir])
    assert created.exit_code == 0 and "Created collection hr (private" in created.output
    again = runner.invoke(app, ["collections", "create", "hr", "--index-dir", index_dir])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(app, ["collections", "create", "HR!", "--index-dir", index_dir])
    assert bad.exit_code == 2 and "[a-z0-9-]" in bad.output

    assert runner.invoke(app, ["index", str(seeds_copy), "--index-dir", index_dir]).exit_code == 0
    indexed = runner.invoke(app, ["index", str(hr_docs), "-c", "hr", "--index-dir", index_dir])
    assert indexed.exit_code == 0 and "(hr): 1 added" in indexed.output

    def ask(question: str, *extra: str) -> dict[str, object]:
        result = runner.invoke(app, ["ask", question, "--json", "--index-dir", index_dir, *extra])
        assert result.exit_code == 0, result.output
        body: dict[str, object] = json.loads(result.output)
        return body

    hr = ask("How many days of paid vacation?", "--collection", "hr")
    assert [c["source"] for c in hr["citations"]] == ["leave.txt"]  # type: ignore[index,union-attr]
    default = ask("How many days of paid vacation?")
    assert "leave.txt" not in [c["source"] for c in default["citations"]]  # type: ignore[index,union-attr]

    listed = runner.invoke(app, ["collections", "list", "--index-dir", index_dir])
    assert listed.exit_code == 0
    lines = [line.split("\t")[:3] for line in listed.output.strip().splitlines()]
    assert lines == [["default", "public", "1 documents"], ["hr", "private", "1 documents"]]

    assert runner.invoke(app, ["collections", "rename", "hr", "people", "--index-dir", index_dir]).exit_code == 0
    assert runner.invoke(app, ["collections", "public", "people", "--index-dir", index_dir]).exit_code == 0
    assert "people\tpublic" in runner.invoke(app, ["collections", "list", "--index-dir", index_dir]).output
    protected = runner.invoke(app, ["collections", "delete", "default", "--index-dir", index_dir])
    assert protected.exit_code == 2 and "cannot be deleted" in protected.output
    assert runner.invoke(app, ["collections", "delete", "people", "--index-dir", index_dir]).exit_code == 0
    missing = runner.invoke(app, ["ask", "Anything?", "-c", "people", "--index-dir", index_dir])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_eval_questions_in_a_collection(tmp_path: Path, seeds_copy: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "How many troops withdrew from Kherson?", "expect": "20,000 to 30,000"}\n')
    index_dir = str(tmp_path / "idx")
    assert runner.invoke(app, ["collections", "create", "news", "--index-dir", index_dir]).exit_code == 0
    assert runner.invoke(app, ["index", str(seeds_copy), "-c", "news", "--index-dir", index_dir]).exit_code == 0

    def top1(*args: str) -> float:
        result = runner.invoke(app, ["eval", "questions", str(questions), "--json", *args])
        assert result.exit_code == 0, result.output
        return float(json.loads(result.output)["top1_sentence_hit"])

    assert top1("--index-dir", index_dir, "--collection", "news") == 1.0
    assert top1("--index-dir", index_dir) == 0.0  # default holds nothing
    assert top1("--documents", str(seeds_copy), "--collection", "other") == 1.0  # a temporary index


def test_eval_squad_into_a_collection_matches_default(tmp_path: Path) -> None:
    data = {
        "version": "v2.0",
        "data": [
            {
                "title": "Bridges",
                "paragraphs": [
                    {
                        "context": "The bridge opened in 1932. It is painted red.",
                        "qas": [
                            {
                                "question": "When did the bridge open?",
                                "id": "q1",
                                "is_impossible": False,
                                "answers": [{"text": "1932", "answer_start": 21}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    results = []
    for extra in ([], ["--collection", "bridges"]):
        result = runner.invoke(app, ["eval", "squad", str(path), "--json", *extra])
        assert result.exit_code == 0, result.output
        metrics = json.loads(result.output)
        results.append({k: v for k, v in metrics.items() if not k.endswith(("_ms", "_seconds"))})
    assert results[0] == results[1] and results[0]["top1_sentence_hit"] == 1.0
