"""A realistic synthetic corpus for the scale test: Zipfian vocabulary, SQuAD-shaped sentences.

Real text has a long-tailed vocabulary: a few words are in almost every sentence, most words are
rare. Keyword retrieval cost depends on exactly that (how long the posting lists of a question's
words are), so the scale corpus draws its words from a Zipf distribution (rank r has probability
proportional to r^-1.07, over 150,000 terms: English function words at the head, pronounceable
synthetic terms after them) and its sentence lengths and
sentences per document from the SQuAD 2.0 dev subset the quality evaluation uses
(`squad_histograms()` computed the two histograms below; a test checks them against the file).
A million sentences (about 23 million words) use all but a handful of the 150,000 terms; 2 million
words already use over 100,000.

Deterministic by seed, and every document is generated from its own seed (`document(i)`), so the
corpus streams (`documents()` is a generator: memory does not grow with the corpus) and questions
can be drawn from any document without generating the ones before it.

Known difference from real text: a synthetic term splits into more WordPiece tokens than an English
word (about 40 tokens per sentence against the subset's 29.5, for the same 22.9 words), so token
vectors and forward passes cost about 1.4x what real text of the same size costs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from qa_service.service import TextSource

VOCABULARY = 150_000
EXPONENT = 1.07

# Words per sentence and sentences per paragraph (a paragraph is a document in the evaluation) in
# ../shared/eval/squad2-dev-subset.json, as our segmenter splits them; computed with
#   python -c "from qa_service.benchmark.zipf_corpus import squad_histograms as h; \
#              print(h('../shared/eval/squad2-dev-subset.json'))"
# (721 sentences, mean 22.9 words; 173 paragraphs, mean 4.17 sentences).
SQUAD_WORDS_PER_SENTENCE = {
    2: 1, 3: 1, 5: 2, 6: 6, 7: 8, 8: 16, 9: 17, 10: 17, 11: 19, 12: 18, 13: 23, 14: 30, 15: 26, 16: 42,
    17: 37, 18: 28, 19: 34, 20: 34, 21: 22, 22: 31, 23: 24, 24: 19, 25: 24, 26: 15, 27: 22, 28: 27,
    29: 16, 30: 13, 31: 16, 32: 18, 33: 6, 34: 12, 35: 10, 36: 8, 37: 9, 38: 8, 39: 10, 40: 5, 41: 8,
    42: 3, 43: 4, 44: 4, 45: 2, 46: 2, 47: 1, 48: 1, 49: 4, 51: 2, 52: 1, 53: 2, 54: 2, 55: 1, 57: 3,
    63: 2, 66: 1, 68: 1, 85: 1, 95: 1, 111: 1,
}  # fmt: skip
SQUAD_SENTENCES_PER_DOCUMENT = {1: 10, 2: 37, 3: 24, 4: 31, 5: 31, 6: 20, 7: 9, 8: 5, 9: 1, 10: 3, 12: 2}

# The most frequent ranks are real English function words, in their usual frequency order, so that
# query processing (stopwords: `qa_service.lexical.STOPWORDS`) treats the head of the distribution as
# it treats real text; every other rank is a synthetic term.
FUNCTION_WORDS = """
    the of and to a in is that for it was on as with be by at he his from are this or which an not
    were had have has they but their one been its also there who more all she her when than into
    other would can first after some only such two new these most
""".split()
_ONSETS = "b c d f g h j k l m n p r s t v w z br ch dr fl gr kr pl sh st tr th".split()
_VOWELS = "a e i o u ai ea ou".split()
# Each term parses one way (onset cluster, vowel cluster, ...), so distinct numbers give distinct terms;
# shuffled (fixed seed) so that the frequent terms do not all start with the same letter.
_SYLLABLES = [o + v for o in _ONSETS for v in _VOWELS]
np.random.default_rng(1007).shuffle(_SYLLABLES)
_FIRST_LONG_RANK = 400  # ranks from here on are synthetic terms of two syllables or more
_COMMA_RATE = 0.06  # commas per word (they do not change the word count or the sentence split)


def synthetic_term(number: int) -> str:
    """The pronounceable term of `number` (0-based): bijective base-len(_SYLLABLES) numeration, so small
    numbers give short terms (one syllable for the first 232, two up to 54,055, then three) and every
    number its own term."""
    base, syllables = len(_SYLLABLES), []
    n = number + 1
    while n > 0:
        n, digit = divmod(n - 1, base)
        syllables.append(_SYLLABLES[digit])
    return "".join(reversed(syllables))


def vocabulary_terms(size: int) -> list[str]:
    """The terms of ranks 0 .. size-1: the function words, then synthetic terms (none equal to a real
    function word or stopword), all distinct."""
    from qa_service.lexical import STOPWORDS

    reserved = set(FUNCTION_WORDS) | STOPWORDS
    out = list(FUNCTION_WORDS[:size])
    number = 0
    while len(out) < size:
        candidate = synthetic_term(number)
        number += 1
        if candidate not in reserved:
            out.append(candidate)
    return out


def _sampler(histogram: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array(sorted(histogram), dtype=np.int64)
    weights = np.array([histogram[v] for v in values], dtype=np.float64)
    return values, weights / weights.sum()


class ZipfCorpus:
    """Documents of sentences whose words follow Zipf(`exponent`) over `vocabulary` terms."""

    def __init__(self, vocabulary: int = VOCABULARY, exponent: float = EXPONENT, seed: int = 7) -> None:
        self.vocabulary, self.exponent, self.seed = vocabulary, exponent, seed
        weights = np.arange(1, vocabulary + 1, dtype=np.float64) ** -exponent
        self._cdf = np.cumsum(weights / weights.sum())
        self._cdf[-1] = 1.0
        self._terms = vocabulary_terms(vocabulary)
        self._lengths = _sampler(SQUAD_WORDS_PER_SENTENCE)
        self._counts = _sampler(SQUAD_SENTENCES_PER_DOCUMENT)
        self.max_sentences_per_document = max(SQUAD_SENTENCES_PER_DOCUMENT)
        self.description = f"zipf: {vocabulary:,} terms, exponent {exponent}, SQuAD subset lengths, seed {seed}"

    def ranks(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` 0-based term ranks drawn from the Zipf distribution."""
        return np.minimum(np.searchsorted(self._cdf, rng.random(count), side="right"), self.vocabulary - 1)

    def document(self, index: int) -> list[str]:
        """The sentences of document `index` (its own random stream: any document, in any order)."""
        rng = np.random.default_rng([self.seed, index])
        count = int(rng.choice(self._counts[0], p=self._counts[1]))
        lengths = rng.choice(self._lengths[0], size=count, p=self._lengths[1])
        ranks = self.ranks(rng, int(lengths.sum()))
        self._end_on_a_long_term(rng, ranks, lengths)
        commas = rng.random(len(ranks)) < _COMMA_RATE
        sentences, at = [], 0
        for length in lengths:
            end = at + int(length)
            words = [self._terms[r] + ("," if c else "") for r, c in zip(ranks[at:end], commas[at:end], strict=True)]
            at = end
            words[-1] = words[-1].rstrip(",") + "."
            words[0] = words[0].capitalize()
            sentences.append(" ".join(words))
        return sentences

    def _end_on_a_long_term(self, rng: np.random.Generator, ranks: np.ndarray, lengths: np.ndarray) -> None:
        """A sentence ends on a content word, as real ones do (and as the segmenter needs: it reads "a."
        or "fla." as abbreviations): a short last word swaps places with the sentence's last long one,
        which keeps the word frequencies; only a sentence without any long word redraws its last."""
        end = 0
        for length in lengths:
            start, end = end, end + int(length)
            if ranks[end - 1] >= _FIRST_LONG_RANK:
                continue
            long_ones = np.flatnonzero(ranks[start:end] >= _FIRST_LONG_RANK)
            if len(long_ones):
                j = start + int(long_ones[-1])
                ranks[j], ranks[end - 1] = ranks[end - 1], ranks[j]
            else:
                while ranks[end - 1] < _FIRST_LONG_RANK:
                    ranks[end - 1] = self.ranks(rng, 1)[0]

    def documents(self, sentences: int) -> Iterator[TextSource]:
        """Documents holding `sentences` sentences in all (the last one cut short), generated lazily."""
        done = index = 0
        while done < sentences:
            text = self.document(index)[: sentences - done]
            done += len(text)
            yield TextSource(source=f"zipf-{index:07d}.txt", text=" ".join(text), origin=f"zipf:{index}")
            index += 1

    def questions(self, count: int, sentences: int, seed: int = 11) -> list[str]:
        """Questions made of a run of words from a random sentence of a document that `documents(sentences)`
        holds whole, so each has an answer in the corpus and the keyword leg sees real posting lists."""
        rng = np.random.default_rng([seed, 1])
        whole = max(1, sentences // self.max_sentences_per_document)
        out = []
        for _ in range(count):
            document = self.document(int(rng.integers(whole)))
            words = document[int(rng.integers(len(document)))].rstrip(".").replace(",", "").split()
            span = min(len(words), int(rng.integers(4, 9)))
            start = int(rng.integers(len(words) - span + 1))
            out.append("What " + " ".join(w.lower() for w in words[start : start + span]) + "?")
        return out


def squad_histograms(path: str | Path) -> dict[str, dict[int, int]]:
    """Words per sentence and sentences per paragraph of a SQuAD file, split as our indexer splits."""
    from qa_service.ingest.segmentation import split_sentences

    words: Counter[int] = Counter()
    sentences: Counter[int] = Counter()
    for article in json.loads(Path(path).read_text())["data"]:
        for paragraph in article["paragraphs"]:
            text = paragraph["context"]
            spans = split_sentences(text)
            sentences[len(spans)] += 1
            for span, _block in spans:
                words[len(text[span.start : span.end].split())] += 1
    return {
        "words_per_sentence": dict(sorted(words.items())),
        "sentences_per_document": dict(sorted(sentences.items())),
    }
