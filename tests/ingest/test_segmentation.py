from haystack import Document

from qa_service.ingest.segmentation import group_passages, split_sentences
from qa_service.ingest.splitter import SentenceSplitter
from tests.conftest import SEED_FILE


def test_every_sentence_is_an_exact_slice_of_the_seed_text() -> None:
    text = SEED_FILE.read_text()
    spans = split_sentences(text)
    assert len(spans) >= 10
    sentences = [text[s.start : s.end] for s, _ in spans]
    assert any("withdrawing 20,000 to 30,000 troops" in s for s in sentences)
    for sentence in sentences:
        assert sentence == sentence.strip() and sentence


def test_abbreviations_blank_lines_and_offsets() -> None:
    text = "  Dr. Smith met Mr. Jones at 5 p.m. on Monday. They talked.\n\n\nNew block here.  Last one!"
    spans = split_sentences(text)
    got = [text[s.start : s.end] for s, _ in spans]
    assert got == ["Dr. Smith met Mr. Jones at 5 p.m. on Monday.", "They talked.", "New block here.", "Last one!"]
    assert [block for _, block in spans] == [0, 0, 1, 1]


def test_passages_never_cross_blocks_and_respect_word_limit() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10)) + "\n\nAnother block."
    spans = split_sentences(text)
    passages = group_passages(text, spans, max_words=12)
    assert passages == sorted(passages)
    assert passages[-1] != passages[-2]  # new block, new passage
    for p in set(passages):
        words = sum(len(text[s.start : s.end].split()) for (s, _), q in zip(spans, passages, strict=True) if q == p)
        assert words <= 12 or sum(1 for q in passages if q == p) == 1


def test_splitter_component_outputs_offsets_and_roundtrips() -> None:
    text = "Alpha is first. Beta is second.\n\nGamma is third."
    splitter = SentenceSplitter(passage_max_words=50)
    doc = Document(id="d1", content=text, meta={"document_id": "d1", "source": "a.txt", "title": "A"})
    out = splitter.run([doc])
    assert [s.content for s in out["sentences"]] == ["Alpha is first.", "Beta is second.", "Gamma is third."]
    for s in out["sentences"]:
        assert text[s.meta["start"] : s.meta["end"]] == s.content
        assert s.meta["title"] == "A"
    assert [p.content for p in out["passages"]] == ["Alpha is first. Beta is second.", "Gamma is third."]
    clone = SentenceSplitter.from_dict(splitter.to_dict())
    assert clone.passage_max_words == 50


def test_a_line_ending_in_sentence_punctuation_ends_the_sentence() -> None:
    # Punkt alone reads "War I." as an initial and runs on into the next line.
    text = "Milley noted the end of World War I.\nKherson was annexed in September.\nNo break here\nat all."
    sentences = [text[s.start : s.end] for s, _ in split_sentences(text)]
    assert sentences == [
        "Milley noted the end of World War I.",
        "Kherson was annexed in September.",
        "No break here\nat all.",
    ]
