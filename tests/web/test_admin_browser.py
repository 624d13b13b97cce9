"""The admin page in a real browser (Debian's Chromium driven by Playwright) against the real model:
sign in, upload a .docx, ask through the widget, and find the question in analytics, the refused
question under content gaps and the thumbs-down in review; all server text shown as text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.service import QAService
from tests.conftest import SEEDS, real_settings, serve_in_thread
from tests.office_files import REFUNDS, make_docx
from tests.web.conftest import widget_ask

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ADMIN = "admin-browser-key"
REFUSED = "Who won the football world cup in 1998?"
EVIL = '<img src=x onerror="window.pwned=1"> Which football team won the cup in 1998?'

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = real_settings(tmp_path_factory.mktemp("admin") / "index").model_copy(
        update={"admin_api_key": SecretStr(ADMIN)}
    )
    service = QAService(settings)
    service.index_paths([SEEDS])
    service.store.close()
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def context(browser: Any, tmp_path: Path) -> Iterator[tuple[Any, list[str]]]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
    problems: list[str] = []

    def watch(page: Any) -> None:
        page.on("pageerror", lambda exc: problems.append(str(exc)))

        def console(message: Any) -> None:  # the admin page's errors, CSP violations included
            if message.type == "error" and "/admin" in page.url:
                problems.append(message.text)

        page.on("console", console)

    ctx.on("page", watch)
    yield ctx, problems
    ctx.close()


def sign_in(page: Any, server: str, key: str) -> None:
    page.goto(server + "/admin")
    page.fill("#key", key)
    page.click("#sign-in-form button")


def test_a_wrong_key_is_refused(context: tuple[Any, list[str]], server: str) -> None:
    ctx, problems = context
    page = ctx.new_page()
    sign_in(page, server, "not-the-key")
    error = page.locator("#sign-in-error")
    error.wait_for(state="visible")
    assert "refused" in error.inner_text() and page.locator("#app").is_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert [p for p in problems if "401" not in p] == []  # the browser logs the refused request itself


def test_upload_ask_and_find_it_in_analytics_gaps_and_review(
    context: tuple[Any, list[str]], server: str, tmp_path: Path
) -> None:
    ctx, problems = context
    admin = ctx.new_page()
    sign_in(admin, server, ADMIN)
    admin.wait_for_selector("#document-rows tr")
    assert admin.evaluate("sessionStorage.length") == 1

    admin.set_input_files(
        "#file", {"name": "policy.docx", "mimeType": "application/octet-stream", "buffer": make_docx()}
    )
    admin.click("#upload-form button")
    admin.wait_for_selector("#upload-status.ok >> text=Indexed policy.docx")
    assert admin.get_attribute("#upload-progress", "value") == "100"
    admin.wait_for_selector("#document-rows td.source >> text=policy.docx")
    row = admin.locator("#document-rows tr", has_text="policy.docx")
    assert int(row.locator("td.num").inner_text()) >= 4

    chat = ctx.new_page()
    chat.goto(server + "/")
    chat.click(".launcher")
    answer = widget_ask(chat, "How many working days until refunds are paid?")
    assert REFUNDS in answer.inner_text()
    answer.locator(".chip").first.click()
    chat.locator(".context").wait_for(state="visible")
    assert chat.locator(".context strong").inner_text() == "policy.docx, section “Refund policy”"
    chat.click(".context .bar button")
    answer.locator(".meta button[data-rating='down']").click()
    chat.wait_for_selector(".meta button[data-rating='down'][aria-pressed='true']")
    other = ctx.new_page()  # a new tab: a new conversation
    other.goto(server + "/")
    other.click(".launcher")
    assert "abstained" in (widget_ask(other, REFUSED).get_attribute("class") or "")
    assert "abstained" in (widget_ask(other, EVIL).get_attribute("class") or "")

    admin.click("#refresh")
    admin.wait_for_selector("#question-rows td.question >> text=How many working days until refunds are paid?")
    assert admin.locator("#t-questions").inner_text() == "3"
    assert admin.locator("#t-thumbs").inner_text() == "0 / 1"
    assert admin.locator("#chart-questions svg rect").count() >= 2  # answered and refused bars of today
    assert admin.locator("#chart-ratings svg rect.down").count() == 1
    gaps = admin.locator("#gap-list li")
    assert gaps.count() >= 1 and REFUSED in admin.locator("#gap-list").inner_text()
    review = admin.locator("#review-list .review-item")
    assert review.count() == 1 and "How many working days until refunds are paid?" in review.inner_text()
    assert REFUNDS in review.locator("blockquote").first.inner_text()
    assert "policy.docx, section “Refund policy”" in review.inner_text()
    admin.screenshot(path=str(tmp_path / "admin.png"), full_page=True)

    # server text is text: the question with markup is shown as typed, nothing ran
    assert EVIL in admin.locator("#question-rows").inner_text()
    assert admin.locator("#question-rows img, #gap-list img").count() == 0
    assert admin.evaluate("window.pwned") is None and other.evaluate("window.pwned") is None

    row.locator("button.danger").click()
    assert row.locator("button.danger").inner_text() == "Confirm delete"
    row.locator("button.danger").click()
    admin.wait_for_function(
        "() => ![...document.querySelectorAll('#document-rows td.source')].some(td => td.textContent === 'policy.docx')"
    )
    assert problems == []


def test_file_names_and_comments_are_rendered_as_text(context: tuple[Any, list[str]], server: str) -> None:
    ctx, problems = context
    auth = {"Authorization": f"Bearer {ADMIN}"}
    evil_name = "<b>notes</b><img src=x onerror=window.pwned=3>.txt"
    httpx.post(f"{server}/v1/documents", json={"source": evil_name, "text": "Penguins cannot fly."}, headers=auth)
    chat = httpx.post(f"{server}/v1/chat", json={"message": "Can penguins fly?"}).json()
    comment = "<script>window.pwned=4</script> wrong"
    httpx.post(
        f"{server}/v1/feedback",
        json={"conversation_id": chat["conversation_id"], "turn": chat["turn"], "rating": "down", "comment": comment},
    )
    page = ctx.new_page()
    sign_in(page, server, ADMIN)
    page.wait_for_selector("#review-list .review-item")
    assert evil_name in page.locator("#document-rows").inner_text()
    assert "Comment: " + comment in page.locator("#review-list").inner_text()
    assert page.locator("#document-rows b, #document-rows img, #review-list script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.reload()  # the key survives a reload of the tab
    page.wait_for_selector("#app:not([hidden])")
    page.click("#sign-out")
    assert page.locator("#sign-in").is_visible() and page.evaluate("sessionStorage.length") == 0
    assert problems == []
