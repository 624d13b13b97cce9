"""Reproduces the default abstention model (`AbstentionModel` in settings) from the tuning file.

`qa-service eval fit-abstention ../shared/eval/squad2-dev-subset.json` prints the fitted weights. The
recipe, fixed so that the result is reproducible (the only randomness is the seeded choice of swapped
names):
- the file's paragraphs are indexed and every question asked with the default pipeline;
- every answerable question that names something its article holds is also asked with that name
  replaced by a name from another article's questions (an entity swap, "How many troops withdrew
  from Kyiv?");
- a class-balanced logistic regression (L2, C=1, standardised features) over the best sentence's
  late interaction, coverage, titled cosine and ungrounded count; positives are the answerable
  questions whose best sentence holds the answer; negatives every other kind: answers with a wrong
  sentence, the file's unanswerable questions, the answerable questions asked with their own article
  filtered out (off-topic), and the entity swaps;
- Platt scaling of its output on the file's own questions (right answers against wrong answers and
  the file's unanswerable questions), folded into the weights: the confidence is the chance that the
  cited sentence is right;
- the threshold is the highest one at which at least `answered` of the answerable questions are
  answered.
Never fit on the validation file (squad2-dev-b.json): report it beside the subset instead.
"""

from __future__ import annotations

import hashlib
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.evaluation.metrics import auroc
from qa_service.evaluation.squad import Question, contains_answer, load_squad
from qa_service.pipeline.grounding import document_vocabulary, is_grounded, question_names
from qa_service.service import QAService
from qa_service.settings import AbstentionModel, Settings

FEATURES = ("late_interaction", "coverage", "dense_titled", "ungrounded")
SEED = 13


def _swapped(question: Question, vocabulary: frozenset[str], foreign: list[str], rng: random.Random) -> str | None:
    """The question with one of its grounded names replaced by a name its article never mentions."""
    grounded = [n for n in question_names(question.text) if n[0].isupper() and is_grounded(n, vocabulary)]
    if not grounded:
        return None
    name = rng.choice(grounded)
    replacement = rng.choice([f for f in foreign if not is_grounded(f, vocabulary)] or foreign)
    return re.sub(rf"\b{re.escape(name)}\b", replacement, question.text, count=1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _threshold(logits: np.ndarray, answered: float) -> float:
    probabilities = _sigmoid(logits)
    for t in np.arange(0.9, 0.01, -0.01):
        if (probabilities >= t).mean() >= answered:
            return round(float(t), 2)
    return 0.01


def _model(x: np.ndarray, kind: np.ndarray, answered: float) -> AbstentionModel:
    from sklearn.linear_model import LogisticRegression

    right = kind == "right"
    mean, scale = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-9)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit((x - mean) / scale, right)
    raw = model.coef_[0] / scale
    bias = float(model.intercept_[0] - (raw * mean).sum())
    natural = np.isin(kind, ("right", "wrong", "unanswerable"))
    platt = LogisticRegression(C=1e6, max_iter=5000).fit((x[natural] @ raw + bias).reshape(-1, 1), right[natural])
    a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
    raw, bias = raw * a, bias * a + b
    threshold = _threshold(x[np.isin(kind, ("right", "wrong"))] @ raw + bias, answered)
    weights = dict(zip(FEATURES, (round(float(w), 3) for w in raw), strict=True))
    return AbstentionModel(bias=round(bias, 3), threshold=threshold, **weights)


def _logits(model: AbstentionModel, x: np.ndarray) -> np.ndarray:
    weights = np.array([getattr(model, f) for f in FEATURES])
    return np.asarray(x @ weights + model.bias)


def fit_abstention(path: Path, settings: Settings, answered: float = 0.95) -> dict[str, Any]:
    documents, questions = load_squad(path)
    rng = random.Random(SEED)
    article_text: dict[str, str] = {}
    for doc in documents:
        article_text[doc.source] = article_text.get(doc.source, "") + "\n" + doc.text
    vocabularies = {title: document_vocabulary(f"{title}\n{text}") for title, text in article_text.items()}
    names_of: dict[str, list[str]] = {}
    for q in questions:
        names_of.setdefault(q.source, []).extend(n for n in question_names(q.text) if n[0].isupper())
    current = ""
    rows: list[list[float]] = []
    kinds: list[str] = []  # right, wrong, unanswerable, off-topic, swap
    articles: list[str] = []

    def record(evidence: dict[str, float], kind: str) -> None:
        rows.append([evidence.get(f, 0.0) for f in FEATURES])
        kinds.append(kind)
        articles.append(current)

    with tempfile.TemporaryDirectory(prefix="qa-fit-") as tmp:
        service = QAService(settings.model_copy(update={"index_dir": Path(tmp)}))
        service.warm_up()
        service.index_texts(documents)
        for q in questions:
            current = q.source
            ranked = service.ask_detailed(q.text).ranked
            if not ranked:
                continue
            evidence = ranked[0].meta.get("evidence", {})
            if q.impossible:
                record(evidence, "unanswerable")
                continue
            record(evidence, "right" if contains_answer(ranked[0].content or "", q.answers) else "wrong")
            other = {"field": "meta.source", "operator": "!=", "value": q.source}
            off = service.ask_detailed(q.text, filters=other).ranked
            if off:
                record(off[0].meta.get("evidence", {}), "off-topic")
            foreign = [n for title, names in names_of.items() if title != q.source for n in names]
            swapped = _swapped(q, vocabularies[q.source], foreign, rng) if foreign else None
            if swapped:
                swap = service.ask_detailed(swapped).ranked
                if swap:
                    record(swap[0].meta.get("evidence", {}), "swap")
        service.store.close()

    x, kind, article = np.asarray(rows), np.asarray(kinds), np.asarray(articles)
    fitted = _model(x, kind, answered)
    # Leave one article out: fitted on the others, scored on the held-out article's own questions.
    held_out = {}
    for title in sorted(set(articles)):
        inside = article != title
        scores = _logits(_model(x[inside], kind[inside], answered), x)
        right, unanswerable = ~inside & (kind == "right"), ~inside & (kind == "unanswerable")
        held_out[title] = auroc(list(scores[right]), list(scores[unanswerable]))
    return {
        "abstention": fitted.model_dump(),
        "examples": {k: int((kind == k).sum()) for k in ("right", "wrong", "unanswerable", "off-topic", "swap")},
        "leave_one_article_out_auroc_right_vs_unanswerable": held_out,
        "data_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "seed": SEED,
        "recipe": "qa_service/evaluation/fit_abstention.py (module docstring)",
    }
