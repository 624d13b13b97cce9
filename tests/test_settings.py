"""Settings defaults that depend on the machine and on each other (qa_service/settings.py)."""

from __future__ import annotations

import pytest

from qa_service import settings as settings_module
from qa_service.settings import Settings


@pytest.mark.parametrize(
    ("cores", "workers", "slots"),
    [(2, 1, 2), (1, 1, 2), (8, 1, 8), (2, 2, 1), (8, 2, 4), (2, 3, 1), (16, 3, 5)],
)
def test_answer_slots_default_to_the_process_share_of_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, slots: int
) -> None:
    monkeypatch.setattr(settings_module, "available_cores", lambda: cores)
    assert Settings(workers=workers).max_concurrent_answers == slots


def test_answer_slots_set_by_the_operator_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "available_cores", lambda: 2)
    assert Settings(workers=2, max_concurrent_answers=3).max_concurrent_answers == 3
    monkeypatch.setenv("QA_WORKERS", "2")
    monkeypatch.setenv("QA_MAX_CONCURRENT_ANSWERS", "2")
    assert Settings().max_concurrent_answers == 2  # from the environment: set, not derived
    monkeypatch.delenv("QA_MAX_CONCURRENT_ANSWERS")
    assert Settings().max_concurrent_answers == 1
