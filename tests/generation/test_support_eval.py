import json
from pathlib import Path

from typer.testing import CliRunner

from qa_service.cli import app

SQUAD = {
    "data": [
        {
            "title": "Kherson",
            "paragraphs": [
                {
                    "context": "Russia withdrew 30,000 troops from Kherson in November. "
                    "The city is on the Dnipro river.",
                    "qas": [
                        {
                            "id": "1",
                            "question": "How many troops did Russia withdraw from Kherson?",
                            "answers": [{"text": "30,000", "answer_start": 16}],
                            "is_impossible": False,
                        },
                        {"id": "2", "question": "Who won?", "answers": [], "is_impossible": True},
                    ],
                }
            ],
        },
        {
            "title": "Otters",
            "paragraphs": [{"context": "Sea otters hold hands while they sleep.", "qas": []}],
        },
    ]
}


def test_support_eval_scores_the_claims(tmp_path: Path) -> None:
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(SQUAD))
    result = CliRunner().invoke(app, ["eval", "support", str(path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["claims"] == 1 and metrics["precision"] == 1.0 and metrics["recall"] == 1.0
    assert metrics["accepted_hard_negatives"] == 0.0
