"""The Arena in headless Chromium on a real ``lwz serve --auth``: get a battle, read, vote, reveal, next."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from storage.models import Vote
from tests.live_app import login
from arena.seed import seed_pool

pytestmark = pytest.mark.slow

MODELS = ["zorblax-writer-7", "quillon-prime-3"]


def battle_number(page) -> int:
    return int(float(page.locator("#arena-battle-id input").input_value() or 0))


def test_full_flow_in_the_browser(live_app, page):
    app = live_app(auth=True, users=[("ann", "annotator", "pw-ann")])
    seed_pool(app.engine, models=MODELS, prompts=3, words=60, seed=5)
    login(page, app, "ann", "pw-ann")
    page.get_by_role("tab", name="Arena").click()
    page.get_by_text("Guidelines").first.wait_for()
    page.locator("#arena-next").click()
    page.wait_for_function("document.querySelector('#arena-text-a')?.innerText.trim().length > 50")
    first = battle_number(page)
    assert first > 0
    assert page.locator("#arena-request").inner_text().startswith("Request")
    assert not any(name in page.content() for name in MODELS)
    assert not page.locator("#arena-think-a").is_visible()
    page.get_by_label("Show the plans (think parts)").check()
    page.locator("#arena-think-a").wait_for(state="visible")
    assert "Plan:" in page.locator("#arena-think-a").inner_text()

    page.locator("#arena-reason").locator("textarea").fill("A keeps the thread better.")
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_role("button", name="A is better").click()
    page.wait_for_function(
        "document.querySelector('#arena-reveal')?.innerText.includes('written by')", timeout=30_000)
    # The vote is one POST outside Gradio's queue, and its answer carried the reveal.
    assert [url.split("/gradio_api/", 1)[-1] for url in posts] == ["run/predict"], posts
    reveal = page.locator("#arena-reveal").inner_text()
    assert all(name in reveal for name in MODELS) and re.search(r"\(60 words\)", reveal)
    assert "Vote stored" in page.locator("#arena-status").inner_text()
    assert "Your votes: 1" in page.locator("#arena-counts").inner_text()
    page.get_by_role("button", name="B is better").wait_for(state="hidden")  # no second vote from the page
    with session_scope(app.engine) as session:
        votes = list(session.exec(sa.select(Vote)).scalars())
    assert [(v.battle_id, v.winner, v.reason) for v in votes] == [(first, "left", "A keeps the thread better.")]

    page.locator("#arena-next").click()
    page.wait_for_function(f"Number(document.querySelector('#arena-battle-id input')?.value) !== {first}")
    assert battle_number(page) not in (0, first)
    assert page.locator("#arena-reveal").inner_text().strip() == ""
    assert not any(name in page.content() for name in MODELS)
    page.get_by_role("button", name="Skip").click()
    page.wait_for_function(
        "(() => { const v = Number(document.querySelector('#arena-battle-id input')?.value);"
        f" return v !== {battle_number(page)} && v !== 0; }})()")


def test_empty_pool_and_narrow_screen(live_app, browser):
    app = live_app(auth=False)
    context = browser.new_context(viewport={"width": 480, "height": 900})
    page = context.new_page()
    try:
        page.goto(app.url + "/")
        page.get_by_role("tab", name="Arena").click()
        page.locator("#arena-next").click()
        page.wait_for_function("document.querySelector('#arena-status')?.innerText.includes('lwz battles fill')")
        seed_pool(app.engine, models=MODELS, prompts=1, words=30, seed=1)
        page.locator("#arena-next").click()
        page.wait_for_function("document.querySelector('#arena-text-b')?.innerText.trim().length > 20")
        box_a = page.locator("#arena-text-a").bounding_box()
        box_b = page.locator("#arena-text-b").bounding_box()
        assert box_b["y"] > box_a["y"] + box_a["height"] - 1, (box_a, box_b)
    finally:
        context.close()
