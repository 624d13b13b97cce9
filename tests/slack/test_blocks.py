"""What the bot posts: document, model and question text can neither ping, link nor break a post."""

import json

from qa_service.contract import Answer, Citation
from qa_service.slack.blocks import SECTION_LIMIT, answer_blocks, fallback_text, share_text

HOSTILE = "Meeting moved <!channel> <!everyone> <!here> see <https://evil.example|the handbook> & <@U123>."


def _answer(text: str, answer: str | None = None) -> Answer:
    citation = Citation(index=1, document_id="d", source="<!channel>.txt", text=text, start=0, end=len(text), score=1)
    return Answer(answer=answer or f"{text} [1]", abstained=False, confidence=0.9, citations=[citation])


def _texts(blocks: list[dict]) -> list[str]:
    found = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                found.append(element["text"])
    return found


def test_no_text_field_carries_mentions_or_disguised_links() -> None:
    answer = _answer(HOSTILE)
    posted = [
        *_texts(answer_blocks(answer, "c", 2, share=True, question=HOSTILE)),
        fallback_text(answer),
        share_text("U9", HOSTILE),
    ]
    for text in posted:
        assert "<!" not in text and "<http" not in text and "<@U123" not in text, text
    assert share_text("U9", HOSTILE).startswith("<@U9> asked: ")  # the bot's own mention stays
    assert "&lt;!channel&gt;" in fallback_text(answer)


def test_a_long_cited_sentence_is_split_into_sections_slack_accepts() -> None:
    sentence = ("Troops & tanks <moved> east of the river; " * 200).strip()  # ~8,400 characters, many entities
    blocks = answer_blocks(_answer(sentence, answer="Short answer [1]."), "c", 2, question="q" * 2000)
    texts = _texts(blocks)
    assert all(len(t) <= SECTION_LIMIT for t in texts)
    assert len(json.dumps(blocks)) < 50_000 and len(blocks) <= 50
    quoted = "".join(t for t in texts if t.startswith(("*[1]*", ">")))
    body = quoted.replace("*[1]* ", "").replace("> ", "").replace("\n", "")
    assert sentence.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:6000] in body
    assert len(fallback_text(_answer(sentence))) <= SECTION_LIMIT


def test_a_citation_names_where_in_its_file_it_is() -> None:
    citation = Citation(
        index=1,
        document_id="d",
        source="deck.pptx",
        text="Q3 revenue grew.",
        start=0,
        end=16,
        score=1,
        location="slide 4",
    )
    answer = Answer(answer="Q3 revenue grew. [1]", abstained=False, confidence=0.9, citations=[citation])
    quoted = [t for t in _texts(answer_blocks(answer, "c", 1)) if t.startswith("*[1]*")]
    assert quoted and quoted[-1].endswith("_deck.pptx, slide 4_")
