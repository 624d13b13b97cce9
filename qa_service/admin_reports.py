"""Reports over the question log for the admin page: analytics per day, content gaps, thumbs-down review."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qa_service.question_log import LoggedQuestion, QuestionLog, Review

DAY = 86400
MAX_DAYS = 366
GAP_QUESTIONS = 1000  # the most recent refused questions that are grouped
GAP_SIMILARITY = 0.7  # cosine similarity of two questions' embeddings that puts them in one group
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Period:
    """[since, until) in Unix time, and the offset of the viewer's clock from UTC (days are theirs)."""

    since: float
    until: float
    utc_offset_minutes: int = 0

    @classmethod
    def last_days(cls, days: int, utc_offset_minutes: int = 0, now: float | None = None) -> Period:
        """The last `days` local days, today included."""
        now = time.time() if now is None else now
        offset = utc_offset_minutes * 60
        today = math.floor((now + offset) / DAY) * DAY - offset
        return cls(today - (days - 1) * DAY, now + 1, utc_offset_minutes)

    def day_of(self, t: float) -> int:
        return math.floor((t + self.utc_offset_minutes * 60) / DAY)

    def days(self) -> list[int]:
        return list(range(self.day_of(self.since), self.day_of(self.until - 1e-6) + 1))


@dataclass
class DayStats:
    date: str
    questions: int = 0
    abstained: int = 0
    up: int = 0
    down: int = 0


@dataclass
class Analytics:
    days: list[DayStats]
    questions: int
    abstained: int
    abstention_rate: float | None
    up: int
    down: int
    p50_ms: float | None
    p95_ms: float | None


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100): a value that was measured, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def analytics(log: QuestionLog, period: Period) -> Analytics:
    timings = log.timings(period.since, period.until)
    ratings = log.ratings(period.since, period.until)
    per_day = {d: DayStats(time.strftime("%Y-%m-%d", time.gmtime(d * DAY))) for d in period.days()}
    for asked_at, refused, _ in timings:
        stats = per_day.get(period.day_of(asked_at))
        if stats is not None:
            stats.questions += 1
            stats.abstained += refused
    for rated_at, rating in ratings:
        stats = per_day.get(period.day_of(rated_at))
        if stats is not None:
            stats.up += rating == "up"
            stats.down += rating == "down"
    latencies = [latency for _, _, latency in timings]
    abstained = sum(refused for _, refused, _ in timings)
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return Analytics(
        days=list(per_day.values()),
        questions=len(timings),
        abstained=abstained,
        abstention_rate=round(abstained / len(timings), 4) if timings else None,
        up=sum(r == "up" for _, r in ratings),
        down=sum(r == "down" for _, r in ratings),
        p50_ms=None if p50 is None else round(p50, 1),
        p95_ms=None if p95 is None else round(p95, 1),
    )


@dataclass
class GapGroup:
    question: str  # the most asked wording (the most recent among equals)
    count: int
    last_asked_at: float
    examples: list[str] = field(default_factory=list)  # other wordings, most recent first


def _key(question: str) -> str:
    return " ".join(_WORD.findall(question.casefold()))


def content_gaps(
    log: QuestionLog,
    period: Period,
    embed: Callable[[list[str]], np.ndarray],
    limit: int = 20,
    similarity: float = GAP_SIMILARITY,
) -> list[GapGroup]:
    """Refused questions grouped by meaning, biggest group first: what users need that the documents
    lack. Wordings that differ only in case and punctuation are one; the rest are grouped greedily
    (newest first) with the group whose first wording's embedding is within `similarity`."""
    refused: list[LoggedQuestion] = log.questions(period.since, period.until, abstained_only=True, limit=GAP_QUESTIONS)
    wordings: dict[str, list[LoggedQuestion]] = {}
    for q in refused:
        wordings.setdefault(_key(q.question) or q.question, []).append(q)
    keys = list(wordings)
    if not keys:
        return []
    vectors = embed([wordings[k][0].question for k in keys])
    leaders: list[int] = []
    members: dict[int, list[str]] = {}
    for k in range(len(keys)):
        sims = vectors[leaders] @ vectors[k] if leaders else np.zeros(0)
        best = int(np.argmax(sims)) if len(sims) else -1
        if best >= 0 and sims[best] >= similarity:
            members[leaders[best]].append(keys[k])
        else:
            leaders.append(k)
            members[k] = [keys[k]]
    groups = []
    for group_keys in members.values():
        asked = [q for key in group_keys for q in wordings[key]]
        by_count = sorted(group_keys, key=lambda key: (-len(wordings[key]), -wordings[key][0].asked_at))
        texts = [wordings[key][0].question for key in by_count]
        groups.append(GapGroup(texts[0], len(asked), max(q.asked_at for q in asked), texts[1:6]))
    groups.sort(key=lambda g: (-g.count, -g.last_asked_at))
    return groups[:limit]


def reviews(log: QuestionLog, period: Period, limit: int = 50) -> list[Review]:
    return log.thumbs_down(period.since, period.until, limit)


def recent_questions(log: QuestionLog, period: Period, limit: int = 50) -> list[LoggedQuestion]:
    return log.questions(period.since, period.until, limit=limit)
