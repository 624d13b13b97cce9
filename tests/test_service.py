from pathlib import Path

import pytest

from qa_service.contract import Turn
from qa_service.errors import InvalidInputError
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings
from tests.conftest import SEED_FILE


@pytest.fixture
def service(fake_settings: Settings) -> QAService:
    return QAService(fake_settings)


def test_answers_cite_exact_sentences_with_offsets(service: QAService, seeds_copy: Path) -> None:
    report = service.index_paths([seeds_copy])
    assert (report.added, report.sentences) == (1, service.store.count_documents())
    answer = service.ask("How many troops withdrew from Kherson?")
    assert not answer.abstained and 0 <= answer.confidence <= 1
    first = answer.citations[0]
    assert "20,000 to 30,000" in first.text
    text = SEED_FILE.read_text()
    for c in answer.citations:
        assert text[c.start : c.end] == c.text and c.source == SEED_FILE.name
        assert f"{c.text} [{c.index}]" in answer.answer
    assert [c.index for c in answer.citations] == list(range(1, len(answer.citations) + 1))


def test_reindex_skips_unchanged_updates_changed_and_removes_deleted(service: QAService, seeds_copy: Path) -> None:
    service.index_paths([seeds_copy])
    extra = seeds_copy / "extra.md"
    extra.write_text("# Notes\n\nThe bridge opened in 1932.")
    report = service.index_paths([seeds_copy])
    assert (report.added, report.unchanged, report.removed) == (1, 1, 0)
    extra.write_text("# Notes\n\nThe bridge opened in 1933 after delays.")
    report = service.index_paths([seeds_copy])
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    assert "1933" in service.ask("When did the bridge open?").citations[0].text
    extra.unlink()
    report = service.index_paths([seeds_copy])
    assert report.removed == 1
    assert [d.source for d in service.store.list_documents()] == [SEED_FILE.name]


def test_unparseable_file_is_reported_and_others_indexed(service: QAService, seeds_copy: Path) -> None:
    (seeds_copy / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    report = service.index_paths([seeds_copy])
    assert report.added == 1 and len(report.failed) == 1 and "broken.pdf" in report.failed[0]


def test_follow_up_questions_use_the_conversation(service: QAService) -> None:
    service.index_texts(
        [
            TextSource("people.txt", "Ada Lovelace wrote the first program. Alan Turing broke the Enigma code."),
            TextSource("places.txt", "She also translated an article by Menabrea. He later worked on computers."),
        ]
    )
    history = [Turn(role="user", content="Who was Ada Lovelace?")]
    assert service.retrieval_query("What did she translate?", history) == "What did Ada Lovelace translate?"
    turing = [Turn(role="user", content="Who was Alan Turing?")]
    assert (
        service.retrieval_query("Which code did his team break?", turing) == "Which code did Alan Turing's team break?"
    )
    assert service.retrieval_query("And after that?", history) == "And after that? Ada Lovelace"
    no_names = [Turn(role="user", content="how many troops withdrew?")]
    assert service.retrieval_query("why did they?", no_names) == "how many troops withdrew? why did they?"
    assert service.retrieval_query("When did Alan Turing break the Enigma code?", history).startswith("When")
    assert service.retrieval_query("What did she translate?", []) == "What did she translate?"


def test_empty_and_overlong_questions_are_rejected(service: QAService) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        service.ask("   ")
    with pytest.raises(InvalidInputError, match="longer than"):
        service.ask("x" * (service.settings.max_message_chars + 1))


def test_empty_index_abstains(service: QAService) -> None:
    answer = service.ask("Anything at all?")
    assert answer.abstained and answer.citations == [] and answer.confidence == 0.0


def test_index_texts_prunes_by_origin_prefix(service: QAService) -> None:
    service.index_texts([TextSource("a", "Alpha text here.", origin="up:a"), TextSource("b", "Beta.", origin="up:b")])
    report = service.index_texts([TextSource("a", "Alpha text here.", origin="up:a")], prune_origin_prefix="up:")
    assert (report.unchanged, report.removed) == (1, 1)
    assert [d.source for d in service.store.list_documents()] == ["a"]
    with pytest.raises(InvalidInputError):
        service.index_texts([TextSource("blank", "   ")])


def test_a_short_whole_question_with_its_own_subject_is_not_a_follow_up() -> None:
    from qa_service.followups import resolve_follow_up

    earlier = ["How many troops withdrew from Kherson?"]
    assert resolve_follow_up("What is the capital of France?", earlier) == "What is the capital of France?"
    # fragments stay follow-ups, names or not
    assert resolve_follow_up("And in September?", earlier) != "And in September?"
    assert resolve_follow_up("What about Luhansk?", earlier) != "What about Luhansk?"


def test_at_most_max_concurrent_answers_compute_at_once(
    fake_settings: Settings, seeds_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past QA_MAX_CONCURRENT_ANSWERS, answers wait their turn (and are all answered)."""
    import threading
    import time

    from qa_service.store.collections import DEFAULT

    service = QAService(fake_settings.model_copy(update={"max_concurrent_answers": 2}))
    service.index_paths([seeds_copy])
    query = service._bind(DEFAULT).query
    real_run = query.run
    active, peak, lock = 0, 0, threading.Lock()

    def counted_run(*args: object, **kwargs: object) -> object:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)  # long enough for every thread to be waiting
            return real_run(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(query, "run", counted_run)
    answers = []
    threads = [
        threading.Thread(target=lambda: answers.append(service.ask("How many troops withdrew from Kherson?")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2
    assert len(answers) == 8 and all("20,000 to 30,000" in a.citations[0].text for a in answers)
