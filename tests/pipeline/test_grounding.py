"""Grounding: the question's names, numbers and counted things must be in the cited document."""

from qa_service.pipeline.grounding import (
    GroundingChecker,
    document_vocabulary,
    question_focus,
    question_names,
    ungrounded_names,
    word_forms,
)
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings

ARTICLE = (
    "The Russian armed forces were withdrawing 20,000 to 30,000 troops from the Ukrainian city of Kherson. "
    "Kherson was annexed by Russia in September. The European Union imposed sanctions in the 1990s. "
    "Warsaw's mayor spoke."
)


def test_question_names_skip_the_first_word_and_function_words() -> None:
    assert question_names("How many troops withdrew from Kyiv?") == ["Kyiv"]
    assert question_names("When did Russia invade Georgia in 2008?") == ["Russia", "Georgia", "2008"]
    assert question_names("What did the US general say?") == ["US"]
    assert question_names("what is it?") == []


def test_names_are_matched_leniently_but_a_swapped_name_is_not() -> None:
    vocabulary = document_vocabulary(ARTICLE)
    assert ungrounded_names("How many troops withdrew from Kherson?", vocabulary) == []
    assert ungrounded_names("How many troops withdrew from Kyiv?", vocabulary) == ["Kyiv"]
    # plural and possessive endings, thousands separators, decades, acronyms of the document's names
    assert ungrounded_names("Were 20000 troops in Kherson's centre?", vocabulary) == []
    assert ungrounded_names("What did the EU do in the 1990s?", vocabulary) == []
    assert ungrounded_names("Who is Warsaw's mayor?", vocabulary) == []
    assert ungrounded_names("When did Russia invade Georgia in 2008?", vocabulary) == ["Georgia", "2008"]


def test_the_counted_thing_is_the_questions_focus() -> None:
    assert question_focus("How many tanks did Russia lose near Kherson?") == "tanks"
    assert question_focus("How many Russian generals have been killed?") == "generals"
    assert question_focus("What is the population of Kherson?") == "population"
    assert question_focus("How many troops withdrew from Kherson?") == "troops"
    assert "refugee" in word_forms("refugees")  # stem("refugees") is "refuge"; the corpus has "refugee"
    assert question_focus("How long has the fighting gone on?") is None
    assert question_focus("How many of the soldiers died?") is None


def test_checker_marks_names_the_document_lacks_and_focus_the_corpus_lacks(fake_settings: Settings) -> None:
    service = QAService(fake_settings)
    service.index_texts([TextSource("kherson.txt", ARTICLE)])
    checker = GroundingChecker(service.store)

    def ungrounded(question: str) -> float:
        ranked = service.ask_detailed(question).ranked
        return checker.run(question, ranked)["documents"][0].meta["evidence"]["ungrounded"]

    assert ungrounded("How many troops withdrew from Kherson?") == 0.0
    assert ungrounded("How many troops withdrew from Kyiv?") == 1.0
    assert ungrounded("How many tanks withdrew from Kherson?") == 1.0  # no tank anywhere in the corpus
    assert ungrounded("How many armed forces were withdrawing?") == 0.0
    assert ungrounded("How many tanks withdrew from Kyiv in 2008?") == 3.0
    clone = GroundingChecker.from_dict(checker.to_dict())
    assert clone.check == checker.check
