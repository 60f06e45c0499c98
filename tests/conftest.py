"""Shared fixtures: a fresh database per test, on SQLite and on the real PostgreSQL server.

Every test points ``LWZ_HOME`` and the working directory's database at temporary folders,
so nothing a test writes outlives it. PostgreSQL tests get a database of their own, created
from the ``test`` database on 127.0.0.1:5432 and dropped afterwards. A missing PostgreSQL or
Chromium fails the tests that need it (see :func:`skip_or_fail`), so a green run means they ran.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("LWZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
WITHOUT_SERVICES = "LWZ_TEST_WITHOUT_SERVICES"
"""Set to 1 to run without PostgreSQL or Chromium on purpose: their tests then skip, with the reason."""
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
TEST_DATA = Path(__file__).resolve().parent / "data"


def default_sigint() -> None:
    """``preexec_fn`` for a child the test interrupts with SIGINT: a suite started in the background
    of a non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


pytest_plugins = ["tests.vllm_server", "tests.live_app"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep each test's database URL out of the user's environment. LWZ_HOME (the model cache) is kept."""
    monkeypatch.delenv("LWZ_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


def skip_or_fail(reason: str) -> None:
    """Fail, with the reason: a missing PostgreSQL or Chromium would otherwise let the run pass
    without testing what it claims (on a developer's machine as under CI). Skip only when
    ``LWZ_TEST_WITHOUT_SERVICES=1`` says the run goes without them on purpose."""
    if os.environ.get(WITHOUT_SERVICES) != "1":
        pytest.fail(f"a required service is missing: {reason} (set {WITHOUT_SERVICES}=1 to skip its tests on purpose)")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means: skip, and say why
        return f"PostgreSQL at {PG_ADMIN_URL} does not answer: {str(exc).strip().splitlines()[0]}"


def _create_pg_database() -> str:
    import psycopg

    name = f"lwz_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'lwz.db'}"


def pytest_collection_modifyitems(items):
    """Every test that reaches PostgreSQL carries the ``postgres`` marker (``-m "not postgres"`` leaves them out)."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()) and "db_url" not in item.fixturenames:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture
def pg_url():
    reason = _pg_available()
    if reason:
        skip_or_fail(reason)
    url = _create_pg_database()
    yield url
    _drop_pg_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lwz.db'}"
        return
    yield request.getfixturevalue("pg_url")


def _upgraded_engine(url: str):
    """An engine on ``url`` with the schema upgraded, disposed when the test ends."""
    from storage.engine import make_engine, upgrade

    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(db_url):
    """An upgraded engine on a fresh database (SQLite and PostgreSQL)."""
    yield from _upgraded_engine(db_url)


@pytest.fixture
def sqlite_engine(sqlite_url):
    yield from _upgraded_engine(sqlite_url)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright (no browser download), one per test module.

    Playwright's sync API keeps an asyncio loop marked as running in the main thread while it is
    open, so ``asyncio.run`` refuses to start. Closing it at the end of each module keeps that
    to the browser tests' own modules.
    """
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"{CHROMIUM} is missing: make chromium installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    yield pg
    context.close()
