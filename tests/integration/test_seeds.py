"""The real embedding model on the seed article."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qa_service.api.app import create_app
from qa_service.contract import Turn
from qa_service.service import QAService
from tests.conftest import SEED_FILE, SEEDS, real_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeds-index")
    QAService(real_settings(path)).index_paths([SEEDS])
    return path


@pytest.fixture(scope="module")
def service(index_dir: Path) -> QAService:
    return QAService(real_settings(index_dir))


def test_kherson_question_cites_the_withdrawal_sentence(service: QAService) -> None:
    answer = service.ask("How many troops withdrew from Kherson?")
    # well clear of the threshold (confidence is calibrated on SQuAD 2.0, half of it adversarial questions)
    assert not answer.abstained and answer.confidence > 1.5 * service.settings.abstention.threshold
    first = answer.citations[0]
    assert first.index == 1 and "withdrawing 20,000 to 30,000 troops" in first.text
    assert SEED_FILE.read_text()[first.start : first.end] == first.text
    assert answer.answer.startswith(first.text) and "[1]" in answer.answer


@pytest.mark.parametrize(
    "question",
    ["What is the capital of France?", "How do I bake sourdough bread?", "Who won the 2018 football World Cup?"],
)
def test_off_topic_questions_are_refused(service: QAService, question: str) -> None:
    answer = service.ask(question)
    assert answer.abstained and answer.citations == [] and answer.confidence < service.settings.abstention.threshold
    assert "could not find" in answer.answer


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How many Russian soldiers have been killed or wounded?", "100,000 Russian soldiers"),
        ("What did Zelensky warn about?", "faking the Kherson retreat"),
        ("Which regions did Russia annex in September?", "Luhansk, Donetsk and Zaporizhia"),
    ],
)
def test_answerable_questions_are_answered(service: QAService, question: str, expected: str) -> None:
    answer = service.ask(question)
    assert not answer.abstained and expected in answer.citations[0].text


def test_follow_up_question_uses_history(service: QAService) -> None:
    history = [Turn(role="user", content="Who is Mark Milley?")]
    first = service.ask("Who is Mark Milley?")
    assert "Milley" in first.citations[0].text
    history.append(Turn(role="assistant", content=first.answer, answer=first))
    follow_up = service.ask("What did he say about negotiations?", history=history)
    assert not follow_up.abstained
    assert "window of opportunity for negotiations" in follow_up.citations[0].text


def test_http_chat_on_the_real_model(index_dir: Path) -> None:
    with TestClient(create_app(real_settings(index_dir))) as client:
        body = client.post("/v1/chat", json={"message": "How many troops withdrew from Kherson?"}).json()
        assert "20,000 to 30,000" in body["citations"][0]["text"]
        refused = client.post("/v1/chat", json={"message": "What is the capital of France?"}).json()
        assert refused["abstained"] is True


def test_index_refuses_a_different_model(index_dir: Path) -> None:
    from qa_service.errors import IndexMismatchError

    settings = real_settings(index_dir).model_copy(update={"embedding_model": "hash:384"})
    with pytest.raises(IndexMismatchError, match="all-MiniLM-L6-v2"):
        QAService(settings)
