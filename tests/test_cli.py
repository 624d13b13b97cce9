import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qa_service.cli import app

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
    import os
    import sys
    import urllib.request

    from qa_service.benchmark.servers import free_port, running

    env = {
        "QA_EMBEDDING_MODEL": "hash:64",
        "QA_ABSTENTION__THRESHOLD": "0",
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_SEEDS_DIR": str(seeds_copy),
    }
    index = subprocess.run(
        [sys.executable, "-m", "qa_service.cli", "index"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert index.returncode == 0, index.stderr
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
