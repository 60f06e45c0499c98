"""Engine setup, sessions and migrations, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from core.errors import DatabaseUnavailable, UserError
from storage.engine import (
    DEFAULT_URL,
    check_connection,
    current_revision,
    database_url,
    make_engine,
    session_scope,
    upgrade,
    write_scope,
)
from storage.models import TABLES, Prompt, User
from tests.conftest import REPO_ROOT
from tests.storage.helpers import head_revision

LWZ = REPO_ROOT / ".venv" / "bin" / "lwz"
EXPECTED_TABLES = {model.__tablename__ for model in TABLES}


def test_database_url_precedence(monkeypatch):
    assert database_url() == DEFAULT_URL == "sqlite:///lwz.db"
    monkeypatch.setenv("LWZ_DATABASE_URL", "sqlite:///from-env.db")
    assert database_url() == "sqlite:///from-env.db"
    assert database_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("not a url", "not a database URL"),
        ("mysql://user@host/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://postgres@127.0.0.1/test", "psycopg2"),
        ("sqlite:////proc/no-such-folder/x.db", "does not exist: create it first"),
    ],
)
def test_make_engine_rejects_bad_urls(url, fragment):
    with pytest.raises(DatabaseUnavailable) as info:
        make_engine(url)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unreachable_server_is_one_line_and_hides_password():
    engine = make_engine("postgresql://someone:secret@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseUnavailable) as info:
        check_connection(engine)
    message = str(info.value)
    assert "cannot reach database" in message and "127.0.0.1:1" in message
    assert "secret" not in message and "\n" not in message
    with pytest.raises(DatabaseUnavailable):
        upgrade(engine)


def test_postgres_scheme_alias_uses_psycopg(pg_url):
    engine = make_engine(pg_url.replace("postgresql://", "postgres://", 1))
    assert engine.url.drivername == "postgresql+psycopg"
    check_connection(engine)
    engine.dispose()


def test_sqlite_pragmas_on_every_connection(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_upgrade_from_empty_twice(db_url):
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert EXPECTED_TABLES <= set(sa.inspect(engine).get_table_names())
    with session_scope(engine) as session:
        session.add(User(name="kept", role="admin"))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with session_scope(engine) as session:
        assert session.execute(sa.select(User.name)).scalars().all() == ["kept"]
    engine.dispose()


def test_lwz_db_upgrade_twice_in_subprocesses(db_url):
    for _ in range(2):
        done = subprocess.run([str(LWZ), "--db", db_url, "db", "upgrade"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"revision {head_revision()}" in done.stderr
        assert done.stdout == ""
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    assert EXPECTED_TABLES <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_indexes_exist_for_used_queries(engine):
    inspector = sa.inspect(engine)
    votes = {tuple(ix["column_names"]) for ix in inspector.get_indexes("votes")}
    generations = {tuple(ix["column_names"]) for ix in inspector.get_indexes("generations")}
    assert {("battle_id",), ("annotator_id",), ("created_at",)} <= votes
    assert {("prompt_id", "model_id"), ("author_id", "created_at"), ("status",)} <= generations
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("votes")}
    assert ("battle_id", "annotator_id") in uniques


def test_session_scope_commits_and_rolls_back(engine):
    with session_scope(engine) as session:
        session.add(User(name="a", role="writer"))
    with pytest.raises(UserError):
        with session_scope(engine) as session:
            session.add(User(name="b", role="writer"))
            session.flush()
            raise UserError("boom")
    with session_scope(engine) as session:
        assert session.execute(sa.select(User.name)).scalars().all() == ["a"]


def test_write_scope_threads_read_then_write_without_losing_one(engine):
    """Each thread reads a counter and writes it back plus one, the pattern that fails with
    "database is locked" (or loses updates) when transactions start as plain reads."""
    import threading

    with session_scope(engine) as session:
        session.add(User(name="counter", role="writer", password_hash="0"))
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(10):
                with write_scope(engine) as session:
                    user = session.execute(
                        sa.select(User).where(User.name == "counter").with_for_update()).scalar_one()
                    user.password_hash = str(int(user.password_hash) + 1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_scope(engine) as session:
        assert session.execute(sa.select(User.password_hash).where(User.name == "counter")).scalar_one() == "80"


def test_timestamps_come_back_timezone_aware(engine):
    naive_reader = sa.select(User.created_at)
    with session_scope(engine) as session:
        session.add(User(name="t", role="writer"))
    with session_scope(engine) as session:
        stamp = session.execute(naive_reader).scalar_one()
        user = session.execute(sa.select(User)).scalar_one()
    for value in (stamp, user.created_at):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert abs(datetime.now(timezone.utc) - value) < timedelta(minutes=5)


def test_non_utc_timestamps_are_stored_as_the_same_instant(engine):
    plus_two = datetime(2026, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        session.add(Prompt(text="x", content_hash="h", created_at=plus_two))
    with session_scope(engine) as session:
        back = session.execute(sa.select(Prompt.created_at)).scalar_one()
    assert back == plus_two and back.tzinfo is not None and back.hour == 10


def test_naive_timestamps_are_refused(engine):
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        with session_scope(engine) as session:
            session.add(Prompt(text="x", content_hash="h", created_at=datetime(2026, 1, 1)))
            session.flush()


def test_importing_storage_does_no_work():
    code = ("import sys, storage, storage.engine, storage.models, storage.catalog, storage.arena, storage.overview; "
            "print(any(m in sys.modules for m in ('torch', 'gradio', 'pandas', 'alembic')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
