"""The Write tab in headless Chromium, on a real ``lwz serve --auth`` with the embedded model.

One server for the module (starting it and loading the model is the slow part); every test
signs in through the login form in a fresh browser context. Generations are kept short (small
targets and think budgets) so the embedded model finishes them in seconds on two CPU cores.

The mid-generation screenshot is written to the test's temporary folder, and to
``docs/screenshot-write.png`` when ``LWZ_UPDATE_SCREENSHOTS=1``.
"""

import os
import shutil
import time
from pathlib import Path

import pytest

from storage.engine import session_scope
from storage.generations import get_generation, list_generations
from tests.helpers import user_id
from tests.live_app import REPO_ROOT, http_session, login, stored_generation

pytestmark = pytest.mark.slow

GEN_TIMEOUT_MS = 240_000
XSS = ('<script>window.__xss="script"</script> <img src=x onerror="window.__xss=\'img\'"> '
       '[click](javascript:window.__xss=\'link\') <a href="javascript:window.__xss=\'a\'">a</a>')


@pytest.fixture
def app(write_app):
    return write_app


def rows_of(app, name):
    with session_scope(app.engine) as s:
        return list_generations(s, author_id=user_id(app, name))


def start_writing(page, request, *, target, think_budget=None, method=None):
    """Fill the form and press Generate; ``think_budget`` None keeps the default, ``method`` None keeps auto."""
    page.fill("#lwz-request textarea", request)
    page.fill("#lwz-target input", str(target))
    if method is not None:
        page.locator("#lwz-method").get_by_text(method, exact=True).click()
    if think_budget is not None:
        if not page.locator("#lwz-think-budget input").is_visible():
            page.get_by_text("Advanced", exact=True).click()
        page.fill("#lwz-think-budget input", str(think_budget))
    page.click("#lwz-generate")
    page.wait_for_function(  # the previous summary, if any, is gone: this run has started
        "() => !/#\\d+ · .*words/.test(document.querySelector('#lwz-status').innerText)")


def text_length(page, selector):
    return page.evaluate(f"() => (document.querySelector('{selector}')?.textContent || '').length")


def open_history(page):
    """Unfold "My writing" (once) and refresh it."""
    if not page.locator("#lwz-open-id input").is_visible():
        page.get_by_text("My writing", exact=True).click()
    page.click("#lwz-refresh")


def open_by_id(page, generation_id):
    open_history(page)
    page.fill("#lwz-open-id input", str(generation_id))
    page.click("#lwz-open")


def wait_for_summary(page):
    """Wait until the status line shows the end-of-generation summary (it names the word count)."""
    page.wait_for_function(
        "() => { const t = document.querySelector('#lwz-status').innerText; return /#\\d+ · .*words/.test(t); }",
        timeout=GEN_TIMEOUT_MS)
    return page.inner_text("#lwz-status")


def test_plan_and_text_grow_while_streaming(app, page, tmp_path):
    login(page, app, "ann", "ann-pw")
    # The bundled model writes 60 words in one request; asked for a plan, it plans and then writes.
    start_writing(page, "Write a short story about a lighthouse keeper who collects storms.", target=60,
                  method="plan")
    think_seen, answer_seen, phases, shot = [], [], [], None
    deadline = time.monotonic() + GEN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        think_seen.append(text_length(page, "#lwz-think"))
        answer_seen.append(text_length(page, "#lwz-answer"))
        phases.append(page.inner_text("#lwz-status"))
        if shot is None and answer_seen[-1] > 40:
            shot = tmp_path / "screenshot-write.png"
            page.screenshot(path=str(shot), full_page=True)
        if "words" in page.inner_text("#lwz-status") and "#" in page.inner_text("#lwz-status"):
            break
        time.sleep(0.1)
    summary = wait_for_summary(page)
    grew = lambda seen: len({n for n in seen if n > 0}) >= 2  # noqa: E731 - seen at two or more lengths
    assert any("Planning" in p for p in phases) and any("Writing" in p for p in phases), phases
    planning = [n for n, p in zip(think_seen, phases) if "Planning" in p]
    writing = [n for n, p in zip(answer_seen, phases) if "Writing" in p]
    # The plan template shows its outline a list at a time (one list for a text this short), so the
    # plan is seen before any text, and the text grows while it is written.
    assert max(planning or [0]) > 0, f"no plan was shown while planning: {planning}"
    assert grew(writing), (planning, writing)
    assert grew(answer_seen), f"the text never grew while streaming: {answer_seen}"
    assert shot is not None and shot.stat().st_size > 10_000
    if os.environ.get("LWZ_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, REPO_ROOT / "docs" / "screenshot-write.png")

    (row,) = rows_of(app, "ann")[:1]
    assert row.status in ("complete", "truncated") and row.answer and row.think
    assert f"#{row.id} · {row.answer_words:,} words" in summary
    assert "tokens" in summary and any(w in summary for w in ("finished", "length limit", "target length"))
    assert "done in" in page.inner_text("#lwz-thinking")
    with page.expect_download() as download:
        page.click("#lwz-download-txt")
    assert Path(download.value.path()).read_text() == row.answer + "\n"
    with page.expect_download() as download:
        page.click("#lwz-download-md")
    assert download.value.suggested_filename.endswith(".md")
    assert row.answer in Path(download.value.path()).read_text()


def test_stop_mid_way_keeps_the_text_and_history_reopens_it(app, page):
    login(page, app, "bob", "bob-pw")
    start_writing(page, "Write a long essay on the history of tide tables.", target=450, think_budget=16)
    page.wait_for_function("() => document.querySelector('#lwz-status').innerText.includes('Writing')",
                           timeout=GEN_TIMEOUT_MS)
    deadline = time.monotonic() + GEN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and not (rows_of(app, "bob") and rows_of(app, "bob")[0].answer):
        time.sleep(0.5)  # the partial text has reached the database (saved every 2 s)
    page.click("#lwz-stop")
    summary = wait_for_summary(page)
    assert "stopped by you" in summary
    (row,) = rows_of(app, "bob")[:1]
    assert (row.status, row.finish_reason) == ("interrupted", "cancelled")
    assert row.answer and row.answer_words < 450
    time.sleep(1.5)  # the server side really stopped: the row no longer grows
    with session_scope(app.engine) as s:
        assert get_generation(s, generation_id=row.id).answer == row.answer
    open_history(page)
    page.wait_for_function("() => document.querySelector('#lwz-history').innerText.includes('tide tables')")
    assert "interrupted" in page.inner_text("#lwz-history")
    page.fill("#lwz-request textarea", "")
    open_by_id(page, row.id)
    page.wait_for_function("() => document.querySelector('#lwz-request textarea').value.includes('tide tables')")
    assert "stopped by you" in page.inner_text("#lwz-status")
    assert page.inner_text("#lwz-answer").strip()[:30] in row.answer

    # Continue (the reopened, interrupted text): the same row grows from its old answer, streamed
    # like Generate, and the round is recorded; stopped again, it is interrupted again.
    assert page.locator("#lwz-continue").is_enabled()
    page.click("#lwz-continue")
    page.wait_for_function("() => document.querySelector('#lwz-status').innerText.includes('Writing')",
                           timeout=GEN_TIMEOUT_MS)
    old_words = row.answer_words
    deadline = time.monotonic() + GEN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and rows_of(app, "bob")[0].answer_words <= old_words:
        time.sleep(0.5)  # the grown text has reached the database
    page.click("#lwz-stop")
    summary = wait_for_summary(page)
    assert f"#{row.id} ·" in summary and "stopped by you" in summary
    rows = rows_of(app, "bob")
    assert len(rows) == 1, "a continuation grows its row; it makes no new one"
    grown = rows[0]
    assert grown.id == row.id and grown.answer.startswith(row.answer) and grown.answer_words > old_words
    assert grown.status == "interrupted"
    (step,) = grown.params["continuations"]
    assert step["from_words"] == old_words and step["to_words"] == grown.answer_words
    assert page.inner_text("#lwz-answer").strip()[:30] in grown.answer


def test_xss_payloads_are_shown_as_inert_text(app, page):
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    login(page, app, "ann", "ann-pw")
    gid = stored_generation(app, author="ann", request="Poem " + XSS, think="Plan " + XSS,
                            answer="# Title\n\nText " + XSS)
    open_by_id(page, gid)
    page.wait_for_function("() => document.querySelector('#lwz-answer').innerText.includes('Title')")
    answer = page.locator("#lwz-answer")
    assert "<script>" in answer.inner_text() and "onerror" in answer.inner_text()
    assert "javascript:" in answer.inner_text()
    for selector in ("script", "img", "a[href^='javascript']", "a"):
        assert answer.locator(selector).count() == 0, selector
    assert page.locator("#lwz-think img, #lwz-think script, #lwz-think a").count() == 0
    assert page.input_value("#lwz-request textarea") == "Poem " + XSS
    # A payload typed as a request is stored as written and listed as text.
    start_writing(page, XSS, target=15, think_budget=8)
    wait_for_summary(page)
    with session_scope(app.engine) as s:
        newest = list_generations(s, author_id=user_id(app, "ann"), limit=1)[0]
        from storage.models import Prompt

        assert s.get(Prompt, newest.prompt_id).text == XSS
    open_history(page)
    page.wait_for_function("() => document.querySelector('#lwz-history').innerText.includes('<script>window.__xss')")
    assert page.locator("#lwz-history img, #lwz-history script, #lwz-history a[href^='javascript']").count() == 0
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__xss === undefined") and alerts == []


def test_a_writer_cannot_open_another_writers_text(app, page):
    secret = "Bob's private draft about the harbour master."
    gid = stored_generation(app, author="bob", request="Bob's request", answer=secret)
    login(page, app, "ann", "ann-pw")
    open_by_id(page, gid)
    page.wait_for_function("() => document.querySelector('#lwz-status').innerText.includes('Cannot open')")
    assert f"there is no generation #{gid} that you may open" in page.inner_text("#lwz-status")
    assert secret not in page.content()
    open_history(page)
    page.wait_for_timeout(1000)
    assert "Bob's request" not in page.inner_text("#lwz-history")


def test_empty_and_oversized_requests_are_refused_in_the_page(app, page):
    login(page, app, "rita", "rita-pw")
    before = len(rows_of(app, "rita"))
    page.click("#lwz-generate")
    page.wait_for_function("() => document.querySelector('#lwz-status').innerText.includes('Not started')")
    assert "the prompt is empty" in page.inner_text("#lwz-status")
    page.fill("#lwz-request textarea", "x" * 200_000)
    page.click("#lwz-generate")
    page.wait_for_function("() => document.querySelector('#lwz-status').innerText.includes('200,000')")
    assert "the prompt is 200,000 characters, over the limit of 20,000" in page.inner_text("#lwz-status")
    assert len(rows_of(app, "rita")) == before
    with session_scope(app.engine) as s:
        from sqlmodel import select

        from storage.models import Prompt

        assert not [p for p in s.exec(select(Prompt)) if len(p.text) >= 200_000 or not p.text.strip()]


def test_signed_out_visitor_is_refused(app, page):
    page.goto(app.url + "/")
    page.get_by_label("username").wait_for()
    assert page.locator("#lwz-request").count() == 0
    client = http_session(app)
    assert client.get("/config").status_code == 401
    joined = client.post("/gradio_api/queue/join", json={"data": ["x", 10, "smollm2-135m", 0.6, 0.95, None, None],
                                                         "fn_index": 0, "session_hash": "visitor0001"})
    assert joined.status_code == 401
    assert client.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
    page.get_by_label("username").fill("ann")
    page.get_by_label("password").fill("wrong")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Incorrect", exact=False).first.wait_for()
    assert page.locator("#lwz-request").count() == 0


def test_tabs_follow_the_role(app, page):
    login(page, app, "annie", "annie-pw")
    page.get_by_text("Signed in as annie", exact=False).wait_for()
    # Every tab starts hidden; the load event shows the role's tabs in one update.
    page.get_by_role("tab", name="Arena").wait_for()
    tabs = page.get_by_role("tab")
    names = {tabs.nth(i).inner_text().strip() for i in range(tabs.count())}
    assert "Write" not in names and "Data" not in names and "Arena" in names


def test_a_reopened_texts_download_reaches_its_owner_and_nobody_else(app, page):
    secret = "Ann's draft about the tide tables, for her eyes only."
    gid = stored_generation(app, author="ann", request="Ann's request about tides", answer=secret)
    login(page, app, "ann", "ann-pw")
    open_by_id(page, gid)
    page.locator("#lwz-download-txt").wait_for(state="visible")
    with page.expect_download() as download:
        page.click("#lwz-download-txt")
    assert Path(download.value.path()).read_text() == secret + "\n"
    # The same URL, asked for by another signed-in user, is refused.
    bob = http_session(app, "bob", "bob-pw")
    response = bob.get(download.value.url.replace(app.url, ""))
    bob.close()
    assert response.status_code == 403 and secret not in response.text
