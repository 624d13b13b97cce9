"""The widget in a real browser (Debian's Chromium driven by Playwright) against the real model."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.api.app import create_app
from qa_service.service import QAService, TextSource
from tests.conftest import SEEDS, real_settings, serve_in_thread
from tests.web.conftest import widget_ask

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EVIL = 'The launch code is <img src=x onerror="window.pwned=1"> and <script>window.pwned=2</script> kept secret.'

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:

    settings = real_settings(tmp_path_factory.mktemp("widget") / "index")
    service = QAService(settings)
    service.index_paths([SEEDS])
    service.index_texts([TextSource("evil <b>notes</b>.txt", EVIL)])
    service.store.db.close()
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def page(browser, server, tmp_path: Path):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server[0] + "/")
    yield page
    page.screenshot(path=str(tmp_path / "final.png"))
    context.close()
    assert errors == [], errors


def open_widget(page) -> None:  # type: ignore[no-untyped-def]
    page.click(".launcher")
    page.wait_for_selector(".panel:not([hidden])")


def test_ask_cite_follow_up_and_reload(page, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    open_widget(page)
    assert page.evaluate("document.querySelector('#qa-widget-host').shadowRoot.activeElement.tagName") == "TEXTAREA"
    widget_ask(page, "How many troops withdrew from Kherson?")
    answer = page.locator(".msg.bot").last
    assert "20,000 to 30,000" in answer.inner_text()
    answer.locator(".chip").first.click()
    context = page.locator(".context")
    context.wait_for(state="visible")
    assert "20,000 to 30,000" in context.locator("mark").inner_text()
    assert context.locator("strong").inner_text() == "000_7957cff8644a918e.txt"
    page.wait_for_function(
        "() => document.querySelector('#qa-widget-host').shadowRoot"
        ".querySelector('.context .text').textContent.length > 400"
    )  # surrounding text loaded
    page.screenshot(path=str(tmp_path / "citation.png"))
    page.click(".context .bar button")

    widget_ask(page, "Who is Mark Milley?")
    widget_ask(page, "What did he say about negotiations?")  # a follow-up: "he" is resolved from the conversation
    assert "window of opportunity for negotiations" in page.locator(".msg.bot").last.inner_text()
    page.reload()
    page.wait_for_selector(".panel:not([hidden])")
    assert page.locator(".msg.user").count() == 3 and page.locator(".msg.bot .chip").count() >= 3
    page.screenshot(path=str(tmp_path / "reloaded.png"))

    page.locator(".msg.bot .meta button[data-rating='up']").first.click()
    page.wait_for_selector(".meta button[data-rating='up'][aria-pressed='true']")
    conversation_id = page.evaluate("JSON.parse(sessionStorage.getItem(Object.keys(sessionStorage)[0])).conversationId")
    assert server[1].state.conversations.feedback(conversation_id)[0]["rating"] == "up"


def test_off_topic_question_shows_an_abstention(page) -> None:  # type: ignore[no-untyped-def]
    open_widget(page)
    widget_ask(page, "What is the capital of France?")
    last = page.locator(".msg.bot").last
    assert "abstained" in last.get_attribute("class") and "could not find" in last.inner_text()
    assert last.locator(".chip").count() == 0


def test_host_css_does_not_restyle_the_widget(page) -> None:  # type: ignore[no-untyped-def]
    open_widget(page)
    style = page.evaluate("""() => {
        const root = document.querySelector('#qa-widget-host').shadowRoot;
        const s = el => getComputedStyle(root.querySelector(el));
        return {font: s('textarea').fontFamily, button: s('form button').backgroundColor,
                transform: s('form button').textTransform, border: s('.log').borderTopStyle,
                color: s('.msg.bot').color, spacing: s('textarea').letterSpacing, size: s('textarea').fontSize};
    }""")
    assert "Comic Sans" not in style["font"] and style["button"] != "rgb(57, 255, 20)"
    assert style["transform"] == "none" and style["border"] != "dashed" and style["color"] != "rgb(139, 0, 0)"
    assert style["spacing"] == "normal" and style["size"] == "15px"
    host_page = page.evaluate("getComputedStyle(document.querySelector('header.site h1')).fontFamily")
    assert "Comic Sans" in host_page  # and the widget did not restyle the page


def test_errors_show_a_retry_and_keep_the_conversation(page) -> None:  # type: ignore[no-untyped-def]
    open_widget(page)
    body = json.dumps({"error": {"code": "rate_limited", "message": "Too many requests"}})
    page.route("**/v1/chat", lambda route: route.fulfill(status=429, headers={"Retry-After": "7"}, body=body))
    page.fill("textarea", "How many troops withdrew from Kherson?")
    page.press("textarea", "Enter")
    error = page.locator(".msg.error")
    error.wait_for()
    assert "retry in 7 s" in error.inner_text()
    page.unroute("**/v1/chat")
    page.route("**/v1/chat", lambda route: route.fulfill(status=500, body="oops"))
    page.click(".retry")
    page.wait_for_selector(".msg.error >> text=server had a problem")
    page.unroute("**/v1/chat")
    page.route("**/v1/chat", lambda route: route.abort())
    page.click(".retry")
    page.wait_for_selector(".msg.error >> text=Could not reach the server")
    page.unroute("**/v1/chat")
    page.click(".retry")
    page.wait_for_selector(".msg.bot .chip")
    assert page.locator(".msg.user").count() == 1 and page.locator(".msg.error").count() == 0


def test_keyboard_and_phone_layout(browser, server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(server[0] + "/")
    page.focus(".launcher")
    page.keyboard.press("Enter")
    page.wait_for_selector(".panel:not([hidden])")
    box = page.locator(".panel").bounding_box()
    assert box is not None and box["width"] == 375
    page.fill("textarea", "first line")
    page.press("textarea", "Shift+Enter")
    assert page.locator(".msg.user").count() == 0 and "\n" in page.input_value("textarea")
    page.keyboard.press("Escape")
    assert page.locator(".panel").is_hidden()
    assert page.evaluate("document.querySelector('#qa-widget-host').shadowRoot.activeElement.className") == "launcher"
    assert page.get_attribute(".launcher", "aria-expanded") == "false"
    assert page.get_attribute(".log", "aria-live") == "polite"
    context.close()


def test_html_in_answers_and_documents_is_shown_as_text(page) -> None:  # type: ignore[no-untyped-def]
    open_widget(page)
    widget_ask(page, "What is the launch code?")
    last = page.locator(".msg.bot").last
    assert "<script>window.pwned=2</script>" in last.inner_text()
    last.locator(".chip").first.click()
    page.locator(".context").wait_for(state="visible")
    assert "<img src=x" in page.locator(".context mark").inner_text()
    assert page.locator(".context strong").inner_text() == "evil <b>notes</b>.txt"
    rendered = page.evaluate("""() => {
        const div = document.createElement('div');
        window.QAWidget.renderAnswer(div, '<b>bold</b> <script>window.pwned=3<\\/script> [1] [9]',
            [{index: 1, source: '<i>s</i>', document_id: 'x', text: 't', start: 0, end: 1}], () => {});
        document.body.appendChild(div);
        return {html: div.innerHTML, chips: div.querySelectorAll('button').length, text: div.textContent};
    }""")
    assert "&lt;b&gt;bold&lt;/b&gt;" in rendered["html"] and "<b>" not in rendered["html"]
    assert rendered["chips"] == 1 and "[9]" in rendered["text"]  # unknown markers stay text
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None


def test_data_attribute_options(browser, server) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(server[0] + "/healthz")  # any page of the origin; the widget is added by one tag
    page.evaluate(
        """url => {
        const s = document.createElement('script');
        s.src = url + '/widget.js';
        Object.assign(s.dataset, {title: 'Help desk', greeting: 'Hello there', accent: '#ff0000',
                                  position: 'left', open: 'true'});
        document.body.appendChild(s);
    }""",
        server[0],
    )
    page.wait_for_selector(".panel:not([hidden])")
    assert page.locator("header h2").inner_text() == "Help desk"
    assert page.locator(".msg.bot").first.inner_text() == "Hello there"
    assert (
        page.evaluate(
            "getComputedStyle(document.querySelector('#qa-widget-host').shadowRoot"
            ".querySelector('header')).backgroundColor"
        )
        == "rgb(255, 0, 0)"
    )
    launcher = page.locator(".launcher").bounding_box()
    assert launcher is not None and launcher["x"] < 100
    context.close()
