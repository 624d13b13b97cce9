"""The abstention model's fitting recipe runs end to end and is reproducible (hashing encoder, tiny file)."""

import json
from pathlib import Path

from qa_service.evaluation.fit_abstention import fit_abstention
from tests.conftest import hash_settings

ARTICLES = {
    "Bridges": [
        ("The Golden Gate Bridge opened in 1937 in San Francisco.", "When did the Golden Gate Bridge open?", "1937"),
        ("The Tower Bridge crosses the Thames in London.", "Which river does the Tower Bridge cross?", "Thames"),
        ("The Rialto Bridge in Venice is made of stone.", "What is the Rialto Bridge made of?", "stone"),
    ],
    "Rivers": [
        ("The Nile flows north through Egypt into the Mediterranean.", "Where does the Nile flow?", "Mediterranean"),
        ("The Amazon carries more water than any other river.", "Which river carries the most water?", "Amazon"),
        ("The Danube passes through Vienna and Budapest.", "Which cities does the Danube pass?", "Vienna"),
    ],
}


def _squad(path: Path) -> Path:
    data = []
    for title, items in ARTICLES.items():
        paragraphs = []
        for n, (context, question, answer) in enumerate(items):
            qas = [
                {"id": f"{title}{n}", "question": question, "answers": [{"text": answer}], "is_impossible": False},
                {
                    "id": f"{title}{n}x",
                    "question": f"Why was {question[:-1].split()[-1]} painted?",
                    "answers": [],
                    "is_impossible": True,
                },
            ]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": title, "paragraphs": paragraphs})
    path.write_text(json.dumps({"data": data}))
    return path


def test_fit_is_reproducible_and_reports_held_out_articles(tmp_path: Path) -> None:
    squad = _squad(tmp_path / "tiny.json")
    first = fit_abstention(squad, hash_settings(tmp_path / "a"), answered=0.8)
    second = fit_abstention(squad, hash_settings(tmp_path / "b"), answered=0.8)
    assert first == second
    model = first["abstention"]
    assert set(model) == {"bias", "late_interaction", "coverage", "dense_titled", "ungrounded", "threshold"}
    assert 0 < model["threshold"] < 1
    assert model["ungrounded"] < 0  # entity swaps are among the negatives
    assert set(first["leave_one_article_out_auroc_right_vs_unanswerable"]) == {"Bridges", "Rivers"}
    examples = first["examples"]
    assert examples["right"] > 0 and examples["unanswerable"] == 6 and examples["off-topic"] == 6
    assert examples["swap"] > 0
    assert len(first["data_sha256"]) == 64
