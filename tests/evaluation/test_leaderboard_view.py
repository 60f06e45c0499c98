"""The Leaderboard tab's data (plain function, both databases) and the tab itself in headless Chromium."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from storage.votes import add_vote
from storage.engine import session_scope
from tests.storage.helpers import seed_arena
from tests.live_app import live_app, login  # noqa: F401  (fixture, helper)
from webapp.annotators_panel import annotators_view
from webapp.leaderboard_tab import ALL, leaderboard_view


def vote(engine, seeded, winners, *, annotator=0, flags=None):
    with session_scope(engine) as session:
        for battle_id, winner in zip(seeded.battle_ids, winners):
            add_vote(session, battle_id=battle_id, annotator_id=seeded.annotator_ids[annotator], winner=winner,
                     reading_seconds=12.0, flags=flags)


def test_leaderboard_view_filters_and_figures(engine):
    seeded = seed_arena(engine, battles=4, annotators=2)
    vote(engine, seeded, ["left", "left", "right", "left"])
    vote(engine, seeded, ["left", "tie", "left", "left"], annotator=1, flags=["spam"])
    view = leaderboard_view(engine, bootstrap=20)
    assert list(view["table"]["model"]) == ["alpha", "beta"]
    assert view["table"]["n"].tolist() == [4, 4]  # flagged votes left out by default
    assert "4 votes" in view["summary"] and "alpha needs 16 more" in view["summary"]
    assert view["table"]["rating"].tolist() == ["needs 16 more votes"] * 2 and view["table"]["rank"].isna().all()
    rated = leaderboard_view(engine, bootstrap=20, min_battles=4)
    assert rated["table"]["rating"].map(float).gt(0).all() and rated["table"]["rank"].notna().all()
    assert all(isinstance(view[k], Figure) for k in ("ratings", "heatmap", "votes"))
    assert view["categories"] == [ALL, "cat0", "cat1"]
    flagged = leaderboard_view(engine, include_flagged=True, bootstrap=20)
    assert flagged["table"]["n"].tolist() == [8, 8]
    cat = leaderboard_view(engine, category="cat1", bootstrap=20)
    assert cat["table"]["n"].tolist() == [2, 2]
    lc = leaderboard_view(engine, length_control=True, heatmap="predicted", bootstrap=20)
    assert "Length control" in lc["summary"]
    style = leaderboard_view(engine, style_control=True, bootstrap=0, min_battles=1)
    assert "Style control" in style["summary"] and "length" in style["summary"]
    assert {"rating_uncontrolled", "rank_uncontrolled", "rank_change"} <= set(style["table"].columns)
    panel = annotators_view(engine)
    assert panel["annotators"]["votes"].tolist() == [4, 4] and len(panel["pairs"]) == 1


def test_leaderboard_view_on_an_empty_database(sqlite_engine):
    view = leaderboard_view(sqlite_engine, bootstrap=10)
    assert view["table"].empty and "0 votes" in view["summary"]


@pytest.mark.slow
def test_leaderboard_tab_refreshes_without_restart(live_app, page, tmp_path):  # noqa: F811
    app = live_app(auth=True, users=[("rita", "researcher", "pw-rita")])
    seeded = seed_arena(app.engine, battles=3, annotators=1)
    vote(app.engine, seeded, ["left", "left", "right"])
    login(page, app, "rita", "pw-rita")
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#lwz-leaderboard-refresh").click()
    page.wait_for_function("document.querySelector('#lwz-leaderboard-summary')?.innerText.includes('3 votes')",
                           timeout=60_000)
    table = page.locator("#lwz-leaderboard-table")
    assert "alpha" in table.inner_text() and "beta" in table.inner_text()
    # New votes arrive while the server runs: Refresh shows them.
    with session_scope(app.engine) as session:
        from storage.users import add_user

        second = add_user(session, name="ann-late", role="annotator").id
    seeded.annotator_ids.append(second)
    vote(app.engine, seeded, ["right", "right", "right"], annotator=1)
    page.locator("#lwz-leaderboard-refresh").click()
    page.wait_for_function("document.querySelector('#lwz-leaderboard-summary')?.innerText.includes('6 votes')",
                           timeout=60_000)
    assert "needs 14 more votes" in page.locator("#lwz-leaderboard-table").inner_text()
    # The ratings plot itself (every Gradio page has SVG icons): a drawn image with a size.
    plot = page.locator("#lwz-leaderboard-ratings-plot img")
    plot.first.wait_for(state="visible", timeout=60_000)
    box = plot.first.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    assert (plot.first.get_attribute("src") or "").startswith(("data:image", "http", "/"))
    # Rubric scores and a judge's verdicts show beside the votes; style control adds the uncontrolled columns.
    from storage.models import JudgeVerdict, Rubric, RubricScore

    with session_scope(app.engine) as session:
        rubric = Rubric(prompt_id=seeded.prompt_ids[0], criteria=[{"name": "A", "description": "", "scale": "1-10"}])
        session.add(rubric)
        session.flush()
        session.add(RubricScore(rubric_id=rubric.id, generation_id=seeded.generation_ids[0], judge="j", criterion="A",
                                score=7, justification="fine"))
        for battle_id in seeded.battle_ids:
            session.add(JudgeVerdict(battle_id=battle_id, judge="j", left_first=True, verdict="left"))
    page.locator("#lwz-leaderboard-style input").check()
    page.wait_for_function("document.querySelector('#lwz-leaderboard-summary')?.innerText.includes('Style control')",
                           timeout=60_000)
    assert "rank_change" in page.locator("#lwz-leaderboard-table").inner_text()
    assert "7" in page.locator("#lwz-leaderboard-rubric").inner_text()
    assert "humans ~ j" in page.locator("#lwz-leaderboard-agreement").inner_text()
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
