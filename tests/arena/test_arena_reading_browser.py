"""Two 10,000-word texts in the Arena, in headless Chromium on a real ``lwz serve --auth``.

One text has a heading every 1,000 words, the other none (its outline is word markers). The
test scrolls with synchronised scroll on, jumps through both outlines with it off, votes, and
checks what the vote stored: each side's read share (deepest point) and seen share, the active
reading time (clamped to the server's wall time), and a too-fast flag computed on the words
seen, not on the 20,000 words in total.

The screenshot is written to the test's temporary folder, and to
``docs/screenshot-arena-long.png`` when ``LWZ_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import random
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from arena.pool import form_battles
from arena.rules import too_fast
from arena.seed import hand_made_text
from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from storage.generations import create_generation, finish_generation, set_in_pool
from storage.models import Assignment, Vote
from tests.live_app import login

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WORDS = 10_000
BACKDATE_S = 300  # the assignment is moved back this far, so the flag depends on words, not on this test's pace


def long_text(*, headings: bool, rng: random.Random) -> str:
    """10,000 words in paragraphs of 100; with ``headings``, a "## Part N" before every 1,000 words."""
    blocks = []
    for part in range(WORDS // 1000):
        if headings:
            blocks.append(f"## Part {part + 1}: the {rng.choice(['harbour', 'orchard', 'island', 'bridge'])}")
        blocks += [hand_made_text(words=100, rng=rng) for _ in range(10)]
    return "\n\n".join(blocks)


def seed_long_battle(engine) -> None:
    rng = random.Random(14)
    with session_scope(engine) as session:
        prompt, _ = get_or_add_prompt(session, text="Write a long, calm chronicle of a harbour town.",
                                      category="seeded", target_words=WORDS)
        for name, headings in (("tern-writer", True), ("gull-writer", False)):
            model = add_model(session, name=name, backend="local", template="direct")
            gen = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={"seed": 14})
            answer = long_text(headings=headings, rng=rng)
            finish_generation(session, generation_id=gen.id, status="complete", finish_reason="stop",
                              answer=answer, answer_words=len(answer.split()), think="Plan: ten parts.")
            session.expire(gen)
            set_in_pool(session, generation_id=gen.id)
        assert len(form_battles(session, seed=14)) == 1


def box_state(page, side: str) -> dict:
    return page.evaluate("""(side) => {
        const el = document.getElementById('arena-text-' + side);
        const panel = document.querySelector('#arena-reading-' + side + ' .lwz-reading');
        return {top: el.scrollTop, fraction: el.scrollTop / (el.scrollHeight - el.clientHeight),
                height: el.clientHeight, read: Number(panel.dataset.read || 0),
                marks: [...panel.querySelectorAll('.lwz-mark')].map(b => b.textContent)};
    }""", side)


def test_two_long_texts_sync_outline_vote(live_app, page, tmp_path):
    app = live_app(auth=True, users=[("ann", "annotator", "pw-ann")])
    seed_long_battle(app.engine)
    login(page, app, "ann", "pw-ann")
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-reading-a .lwz-reading").wait_for(state="hidden")  # no battle, no progress line
    page.locator("#arena-next").click()
    page.wait_for_function("['a', 'b'].every(s => document.querySelectorAll("
                           "'#arena-reading-' + s + ' .lwz-mark').length >= 10)", timeout=60_000)
    with session_scope(app.engine) as session:
        assignment = session.exec(sa.select(Assignment)).scalars().one()
        assignment.assigned_at = assignment.assigned_at - timedelta(seconds=BACKDATE_S)

    # Each side scrolls inside its own box; the heading text's outline lists its parts, the other's
    # lists a marker every 400 words.
    headed = "a" if page.locator("#arena-text-a h2").count() else "b"
    plain = {"a": "b", "b": "a"}[headed]
    assert page.locator(f"#arena-text-{plain} h2").count() == 0
    marks = {side: box_state(page, side)["marks"] for side in "ab"}
    assert len(marks[headed]) == 10 and marks[headed][0].startswith("Part 1: the ")
    assert marks[plain][:3] == ["Start", "400", "800"] and marks[plain][-1] == "10,000"
    assert all(box_state(page, s)["height"] < 900 for s in "ab")
    assert "Read to " in page.locator(f"#arena-reading-{plain}").inner_text()

    # Synchronised scroll: the wheel over A moves B to the same share of its text.
    page.get_by_label("Scroll both texts together").check()
    page.wait_for_function("window.lwzReading.sync === true")
    page.locator("#arena-text-a").hover()
    page.mouse.wheel(0, 2500)
    # Until the (smooth) scroll has come to rest on both sides: same position at two polls in a row.
    page.wait_for_function("""() => {
        const f = (s) => { const el = document.getElementById('arena-text-' + s);
                           return el.scrollTop / (el.scrollHeight - el.clientHeight); };
        const now = [f('a'), f('b')].join(), still = window.__lwzLast === now;
        window.__lwzLast = now;
        return still && f('a') > 0.05 && Math.abs(f('a') - f('b')) < 0.01;
    }""", polling=250)
    page.get_by_label("Scroll both texts together").uncheck()
    page.wait_for_function("window.lwzReading.sync === false")

    # Outline jumps, sync off: the other side stays where it is.
    still = box_state(page, headed)["top"]
    page.locator(f"#arena-reading-{plain} .lwz-mark", has_text="4,000").first.click()
    page.wait_for_function(f"Number(document.querySelector('#arena-reading-{plain} .lwz-reading').dataset.read) > 0.4")
    assert box_state(page, headed)["top"] == still
    page.locator(f"#arena-reading-{headed} .lwz-mark", has_text="Part 9").click()
    page.wait_for_function(f"""() => {{
        const el = document.getElementById('arena-text-{headed}');
        const h = [...el.querySelectorAll('h2')][8], box = el.getBoundingClientRect();
        const top = h.getBoundingClientRect().top;
        return top >= box.top && top < box.top + 40;
    }}""")
    page.wait_for_function(f"Number(document.querySelector('#arena-reading-{headed} .lwz-reading').dataset.read) > 0.8")
    page.wait_for_function("JSON.parse(window.lwzReading.report()).active_seconds > 0")
    # Outline entries that were on screen are marked; those jumped over are not.
    seen_marks = page.locator(f"#arena-reading-{plain} .lwz-seen").all_inner_texts()
    assert "Start" in seen_marks and "4,000" in seen_marks and "3,200" not in seen_marks, seen_marks
    shot = tmp_path / "screenshot-arena-long.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("LWZ_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, REPO_ROOT / "docs" / "screenshot-arena-long.png")

    page.get_by_role("button", name="A is better").click()
    page.wait_for_function("document.querySelector('#arena-reveal')?.innerText.includes('written by')")
    with session_scope(app.engine) as session:
        vote = session.exec(sa.select(Vote)).scalars().one()
        session.expunge(vote)
    side = {"a": "left", "b": "right"}
    read = {s: getattr(vote, f"read_{side[s]}") for s in "ab"}
    seen = {s: getattr(vote, f"seen_{side[s]}") for s in "ab"}
    assert 0.4 < read[plain] < 0.5 and 0.8 < read[headed] < 0.9, read
    # What was on screen: the start, a stretch near 15%, and each jump's window; not what was jumped over.
    assert all(0.05 < seen[s] < 0.35 and seen[s] < read[s] for s in "ab"), (seen, read)
    assert vote.reading_seconds >= BACKDATE_S
    assert 0 < vote.active_seconds < vote.reading_seconds - BACKDATE_S / 2  # the page's own count, not the wall
    # 20,000 words in this time would be too fast; the words seen are not, so the vote is not flagged.
    assert too_fast(seconds=vote.reading_seconds, words=2 * WORDS, words_per_minute=1000)
    assert vote.flags == [] and not vote.flagged
    assert "flagged" not in page.locator("#arena-status").inner_text()
