"""Regenerate the README screenshots of the Arena and Leaderboard tabs (no GPU, no model server).

    LWZ_HOME=$HOME/.cache/lwz HF_HUB_OFFLINE=1 .venv/bin/python docs/screenshots.py

Builds a fresh SQLite database in a temporary folder, seeds a battle pool of hand-made texts
(``arena.seed.seed_pool``) and a few hundred blind votes drawn from fixed model strengths
with a seeded ``random.Random``, starts ``lwz serve --auth`` on a free port, signs in through
the login form in headless Chromium and writes:

- ``docs/screenshot-arena.png``: an annotator reading a battle, the two texts side by side;
- ``docs/screenshot-arena-revealed.png``: the same battle after the vote, model names shown;
- ``docs/screenshot-leaderboard.png``: a researcher's leaderboard (ratings, intervals, plot).

The server's process group is stopped and the temporary folder removed however the run ends.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a plain script: make the project's packages importable

from tests.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402  (the browser tests' own helpers)
from tests.live_app import _stop as stop_server  # noqa: E402
from tests.live_app import _wait_until_up as wait_until_up  # noqa: E402
from tests.helpers import free_port  # noqa: E402

LWZ = REPO_ROOT / ".venv" / "bin" / "lwz"
VIEWPORT = {"width": 1280, "height": 900}
STRENGTHS = {"atlas-9b": 1.0, "birch-7b": 0.55, "cedar-3b": 0.2, "dune-1b": -0.6}
"""Made-up models and the log-strengths their seeded votes are drawn from (demo data, not results)."""
VOTERS = [("vera", "annotator", "vera-pw"), ("omar", "annotator", "omar-pw"), ("lin", "annotator", "lin-pw")]
ANNOTATOR = ("ann", "annotator", "ann-pw")
RESEARCHER = ("rita", "researcher", "rita-pw")


def seed_database(db_url: str, *, prompts: int, words: int, seed: int) -> int:
    """Upgrade a fresh database, add the users, the pool and the voters' votes; returns the vote count.

    Each voter votes once on every battle. The winner follows Bradley–Terry on ``STRENGTHS``, with
    one vote in ten a tie and one in forty "both bad"; votes are spread over the past week so the
    votes-over-time plot has more than one bar. ``ANNOTATOR`` gets no votes, so every battle is
    still new to them.
    """
    from storage.arena import battle_candidates
    from storage.votes import bulk_insert_votes
    from storage.engine import make_engine, session_scope, upgrade
    from storage.models import utcnow
    from storage.users import add_user
    from arena.seed import seed_pool

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with session_scope(engine) as session:
            voter_ids = [add_user(session, name=n, role=r, password=p).id for n, r, p in VOTERS]
            for name, role, password in (ANNOTATOR, RESEARCHER):
                add_user(session, name=name, role=role, password=password)
        seed_pool(engine, models=list(STRENGTHS), prompts=prompts, words=words, seed=seed)
        rng = random.Random(seed)
        now = utcnow()
        with session_scope(engine) as session:
            rows = []
            for battle in battle_candidates(session):
                for voter_id in voter_ids:
                    rows.append({
                        "battle_id": battle["battle_id"], "annotator_id": voter_id,
                        "winner": draw_winner(battle["model_left"], battle["model_right"], rng=rng),
                        "reading_seconds": round(rng.uniform(40, 240), 1),
                        "created_at": now - timedelta(days=rng.randint(0, 6), minutes=rng.randint(0, 600)),
                    })
            return bulk_insert_votes(session, rows=rows)
    finally:
        engine.dispose()


def draw_winner(left: str, right: str, *, rng: random.Random) -> str:
    """``left``/``right``/``tie``/``both_bad`` for one vote, Bradley–Terry on ``STRENGTHS``."""
    roll = rng.random()
    if roll < 0.025:
        return "both_bad"
    if roll < 0.125:
        return "tie"
    p_left = 1.0 / (1.0 + math.exp(STRENGTHS[right] - STRENGTHS[left]))
    return "left" if rng.random() < p_left else "right"


def start_server(db_url: str, *, workdir: Path, port: int) -> subprocess.Popen:
    """``lwz serve --auth`` in its own process group, logging to ``workdir/serve.log``.

    ``--model`` names a seeded model so the bundled one is not registered (it would show as an
    unrated row). ``LWZ_ARENA_WPM`` is raised because the script votes at once, and a vote cast
    faster than the texts can be read is flagged (the shot would show the flag note).
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1",
           "LWZ_ARENA_WPM": "1000000"}
    env.pop("LWZ_DATABASE_URL", None)
    command = [str(LWZ), "--db", db_url, "serve", "--auth", "--host", "127.0.0.1", "--port", str(port),
               "--model", next(iter(STRENGTHS))]
    with (workdir / "serve.log").open("wb") as log:
        return subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def signed_in_page(browser, url: str, name: str, password: str):
    """A fresh 1280x900 page signed in through Gradio's login form, the app loaded."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(url + "/")
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("gradio-app [role=tablist]", timeout=60_000)
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=60_000)
    return page


def shoot_arena(browser, url: str, out_dir: Path) -> None:
    page = signed_in_page(browser, url, ANNOTATOR[0], ANNOTATOR[2])
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-next").click()
    page.wait_for_function("document.querySelector('#arena-text-b')?.innerText.trim().length > 50", timeout=60_000)
    page.wait_for_timeout(500)  # let the vote buttons appear
    page.screenshot(path=str(out_dir / "screenshot-arena.png"), full_page=True)
    page.locator("#arena-reason textarea").fill("A keeps one image going from start to end; B drifts.")
    page.get_by_role("button", name="A is better").click()
    page.wait_for_function("document.querySelector('#arena-reveal')?.innerText.includes('written by')",
                           timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(out_dir / "screenshot-arena-revealed.png"), full_page=True)
    page.context.close()


def shoot_leaderboard(browser, url: str, out_dir: Path) -> None:
    page = signed_in_page(browser, url, RESEARCHER[0], RESEARCHER[2])
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#lwz-leaderboard-refresh").click()
    page.wait_for_function("document.querySelector('#lwz-leaderboard-summary')?.innerText.includes('votes')",
                           timeout=120_000)
    page.wait_for_function(
        f"document.querySelector('#lwz-leaderboard-table')?.innerText.includes({next(iter(STRENGTHS))!r})",
        timeout=60_000)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(out_dir / "screenshot-leaderboard.png"), full_page=True)
    page.context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs", help="folder for the PNGs (default docs/)")
    parser.add_argument("--prompts", type=int, default=12, help="seeded prompts (each gives 6 battles)")
    parser.add_argument("--words", type=int, default=110, help="words per seeded text")
    parser.add_argument("--seed", type=int, default=1, help="seed of the texts, sides and votes")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lwz-screenshots-") as tmp:
        workdir = Path(tmp)
        db_url = f"sqlite:///{workdir / 'app.db'}"
        votes = seed_database(db_url, prompts=args.prompts, words=args.words, seed=args.seed)
        print(f"seeded {votes} votes", flush=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(db_url, workdir=workdir, port=port)
        try:
            wait_until_up(url, process, workdir / "serve.log", 120.0)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                try:
                    shoot_arena(browser, url, args.out)
                    shoot_leaderboard(browser, url, args.out)
                finally:
                    browser.close()
        except Exception:
            sys.stderr.write((workdir / "serve.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            stop_server(process)
    for name in ("screenshot-arena.png", "screenshot-arena-revealed.png", "screenshot-leaderboard.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
