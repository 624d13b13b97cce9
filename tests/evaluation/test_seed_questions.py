"""The seed article's own question file (paraphrases, follow-ups, near-miss off-topic questions) as a floor.

The file was written for this test, not taken from the tuning data; `qa-service eval questions` reads
the same format for a team's own documents."""

from pathlib import Path

import pytest

from qa_service.evaluation.questions import evaluate_questions, load_questions
from qa_service.service import QAService
from tests.conftest import SEEDS, real_settings

QUESTIONS = Path(__file__).with_name("seed_questions.jsonl")


@pytest.fixture(scope="module")
def seed_service(tmp_path_factory: pytest.TempPathFactory) -> QAService:
    service = QAService(real_settings(tmp_path_factory.mktemp("seed-eval")))
    service.index_paths([SEEDS])
    return service


def test_the_file_is_big_enough_and_mixed() -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions) >= 30
    assert sum(q.unanswerable for q in questions) >= 15 and sum(bool(q.history) for q in questions) >= 2


@pytest.mark.integration
def test_seed_question_floor(seed_service: QAService) -> None:
    metrics = evaluate_questions(seed_service, load_questions(QUESTIONS))
    assert metrics["abstain_rate_unanswerable"] >= 0.9, metrics["failures"]
    assert metrics["right_and_answered"] >= 0.55, metrics["failures"]
    assert metrics["top1_sentence_hit"] >= 0.68 and metrics["top3_sentence_hit"] >= 0.94
    assert metrics["auroc_right_vs_unanswerable"] >= 0.9


@pytest.mark.integration
@pytest.mark.parametrize(
    "question",
    [
        "How many troops withdrew from Kyiv?",  # the article says Kherson (and Kiev forces elsewhere)
        "When did Russia invade Georgia?",
        "How many tanks did Russia lose near Kherson?",  # no tank anywhere in the documents
        "How many Russian generals have been killed?",
        "When did Russia annex Crimea?",  # the article has the Crimean peninsula, not its annexation
    ],
)
def test_questions_about_things_the_documents_do_not_hold_are_refused(seed_service: QAService, question: str) -> None:
    answer = seed_service.ask(question)
    assert answer.abstained, answer


@pytest.mark.integration
def test_the_right_sentence_is_cited_first(seed_service: QAService) -> None:
    answer = seed_service.ask("How many troops withdrew from Kherson?")
    assert not answer.abstained and "20,000 to 30,000 troops" in answer.citations[0].text
    paraphrase = seed_service.ask_detailed("How long has the fighting gone on?")
    assert "more than eight-month war" in (paraphrase.ranked[0].content or "")
