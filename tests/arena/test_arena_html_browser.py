"""A writer's HTML in a battle, in headless Chromium: inert text, the vote buttons usable, nothing fetched.

The payload is issue 13's: a full-page fixed overlay, a remote image and a form, with issue 25's
bare URLs, sent as the request, both plans and both answers; one model's name carries an image, a
link and a bare URL. The page must show it all as text (no link forms, in the texts or the
reveal), keep the vote buttons visible and on top (the element at a button's centre is the
button), and request nothing from the payload's host. Every request leaving the app's own address
is recorded and aborted.
"""

from __future__ import annotations

import pytest

from tests.live_app import login

pytestmark = pytest.mark.slow

PAYLOAD = ('<div id="overlay" style="position:fixed;inset:0;z-index:9999;background:#000">covered</div>'
           '<img id="remote" src=http://evil.invalid/p.png><form id="remote-form" action=http://evil.invalid/f>'
           '<input name=x></form> Bare http://evil.invalid/b, www.evil.invalid/w and x@evil.invalid.')
LINKED_MODEL = "quillon <img src=http://evil.invalid/m.png>[n](http://evil.invalid/n) www.evil.invalid"
"""A model name with an image, a Markdown link and a bare URL: the reveal must show it as text."""


def seed_payload_battle(engine) -> None:
    from arena.rules import ArenaSettings
    from arena.service import refresh_pool
    from storage.catalog import add_model, get_or_add_prompt
    from storage.engine import session_scope
    from storage.generations import create_generation, finish_generation, set_in_pool

    with session_scope(engine) as s:
        prompt, _ = get_or_add_prompt(s, text="Write a story. " + PAYLOAD)
        for name in ("zorblax-writer-7", LINKED_MODEL):
            model = add_model(s, name=name, backend="local")
            g = create_generation(s, prompt_id=prompt.id, model_id=model.id, params={})
            finish_generation(s, generation_id=g.id, status="complete", finish_reason="stop",
                              think="Plan. " + PAYLOAD, answer="Once upon a time. " + PAYLOAD, answer_words=5)
            set_in_pool(s, generation_id=g.id)
    assert refresh_pool(engine, settings=ArenaSettings()) == 1


def test_overlay_payload_is_inert_and_the_vote_buttons_work(live_app, page):
    app = live_app(auth=True, users=[("ann", "annotator", "pw-ann")])
    seed_payload_battle(app.engine)
    outside: list[str] = []

    def only_the_app(route):
        url = route.request.url
        if url.startswith(app.url) or url.startswith("data:") or url.startswith("blob:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", only_the_app)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    login(page, app, "ann", "pw-ann")
    # An annotator lands on the Arena, the first tab the role may see: no click on the tab.
    page.locator("#arena-next").wait_for(state="visible", timeout=30_000)
    page.locator("#arena-next").click()
    page.wait_for_function("document.querySelector('#arena-text-a')?.innerText.includes('covered')")

    assert page.evaluate("document.querySelectorAll('#overlay, #remote, #remote-form, img[src*=evil]').length") == 0
    assert "position:fixed" in page.locator("#arena-text-a").inner_text()  # shown as text
    assert "<img" in page.locator("#arena-request").inner_text()
    button = page.get_by_role("button", name="A is better")
    button.wait_for(state="visible")
    on_top = button.evaluate(
        "b => { const r = b.getBoundingClientRect();"
        " const e = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2); return b.contains(e); }")
    assert on_top, "something covers the vote button"
    button.click()  # Playwright also refuses to click an element another one covers
    page.wait_for_function("document.querySelector('#arena-reveal')?.innerText.includes('written by')",
                           timeout=30_000)
    assert not [url for url in requested + outside if "evil.invalid" in url]
    # No link formed anywhere from stored text: not from the bare URLs, not from the model's name.
    panes = "#arena-request, #arena-text-a, #arena-text-b, #arena-think-a, #arena-think-b, #arena-reveal"
    assert page.evaluate(f"document.querySelectorAll('{', '.join(p + ' a' for p in panes.split(', '))}').length") == 0
    assert "www.evil.invalid" in page.locator("#arena-reveal").inner_text()
