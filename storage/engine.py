"""Engine and session setup, and schema upgrades through Alembic.

``make_engine(url)`` is the only way the project builds an engine, so every test can point
it at its own database. SQLite gets WAL, foreign keys and a busy timeout, so that the web
app, the CLI and batch jobs can write to one file at once; PostgreSQL goes through psycopg.

A value the database refuses (a NUL character in PostgreSQL text, a number out of a column's
range) becomes one :class:`UserError` line in :func:`session_scope`, never SQL with its
parameters or a traceback; :func:`row_id` refuses ids no table can hold before any query.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from core.errors import DatabaseUnavailable, UserError

DEFAULT_URL = "sqlite:///lwz.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10
MAX_ROW_ID = 2**31 - 1
"""The largest id a table's key holds on every backend (PostgreSQL's INTEGER is 32 bits)."""


def database_url(explicit: str | None = None) -> str:
    """The URL to use: an explicit one, else ``LWZ_DATABASE_URL``, else ``sqlite:///lwz.db``.

    An explicit empty URL (``--db ""``) is refused rather than read as "the default".
    """
    if explicit is not None:
        if not explicit.strip():
            raise DatabaseUnavailable("the database URL is empty: give one (sqlite:///lwz.db or postgresql://HOST/DB)")
        return explicit
    return os.environ.get("LWZ_DATABASE_URL") or DEFAULT_URL


def row_id(value, *, what: str) -> int:
    """``value`` as a row id (a whole number from 1 to :data:`MAX_ROW_ID`); UserError otherwise."""
    if isinstance(value, bool):
        raise UserError(f"not a {what} number: {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"not a {what} number: {str(value)[:40]!r}") from None
    if isinstance(value, float) and number != value:
        raise UserError(f"not a {what} number: {value!r}")
    if not 1 <= number <= MAX_ROW_ID:
        raise UserError(f"there is no {what} #{str(number)[:40]}")
    return number


def make_engine(url: str | None = None, *, pool_size: int = 20) -> Engine:
    """Build an engine for ``url`` (see :func:`database_url`). Raises DatabaseUnavailable for a bad URL."""
    url = database_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUnavailable(f"not a database URL: {url!r} (try sqlite:///lwz.db or postgresql://HOST/DB)") from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(parsed, pool_size=pool_size)
        if backend in ("postgresql", "postgres"):
            return _postgres_engine(parsed, pool_size=pool_size)
    except DatabaseUnavailable:
        raise
    except Exception as exc:  # a missing driver or a bad option: say which, in one line
        raise DatabaseUnavailable(f"cannot use database URL {_safe(parsed)}: {_first_line(exc)}") from None
    raise DatabaseUnavailable(f"unsupported database {backend!r} in {_safe(parsed)}: use sqlite:/// or postgresql://")


def _sqlite_engine(parsed, *, pool_size: int) -> Engine:
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        folder = Path(parsed.database).expanduser().parent
        if not folder.is_dir():  # a typo in the path must not create folders somewhere
            raise DatabaseUnavailable(f"the folder {folder} for {_safe(parsed)} does not exist: create it first")
    # Connections are kept (as for PostgreSQL): opening one costs a connect and four pragmas, and
    # with SQLAlchemy's default of 5 (+10 overflow) a busy server opened and closed one per request.
    pool = {} if parsed.database in (None, "", ":memory:") else {"pool_size": pool_size, "max_overflow": pool_size}
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **pool,
    )
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _postgres_engine(parsed, *, pool_size: int) -> Engine:
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    # Without a connect timeout an unreachable host hangs for minutes before the error shows.
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return sa.create_engine(
        parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, connect_args=connect_args
    )


def _safe(parsed) -> str:
    return repr(parsed.render_as_string(hide_password=True))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def check_connection(engine: Engine) -> None:
    """Open one connection, turning any driver failure into a one-line DatabaseUnavailable."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # driver errors vary by backend; the message is what matters
        raise DatabaseUnavailable(
            f"cannot reach database {engine.url.render_as_string(hide_password=True)}: {_first_line(exc)}"
        ) from None


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error.

    A value the database refuses becomes a one-line UserError (see :func:`refused_value`).
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            reason = refused_value(exc)
            if reason is not None:
                raise UserError(reason) from None
            raise


def refused_value(exc: BaseException) -> str | None:
    """One line for a value the database refused (no SQL, no parameters), else None.

    PostgreSQL raises a DataError (NUL in text, an integer out of range, a malformed number);
    SQLite's driver raises OverflowError for an integer over 64 bits before any SQL runs.
    """
    if isinstance(exc, sa.exc.DataError):
        return f"the database refused a value: {_first_line(exc)}"
    if isinstance(exc, OverflowError) and "SQLite INTEGER" in str(exc):
        return "the database refused a value: a number too large to store"
    return None


_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.Lock]" = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(engine)
        if lock is None:
            lock = _WRITE_LOCKS[engine] = threading.Lock()
        return lock


@contextmanager
def write_scope(engine: Engine) -> Iterator[Session]:
    """:func:`session_scope` for a transaction that writes; on SQLite it holds the write lock from the start.

    SQLite's default deferred transaction reads a snapshot first and fails at once with
    "database is locked" when it later tries to write after another writer committed (the
    busy timeout does not apply to that upgrade), so the transaction starts with BEGIN
    IMMEDIATE and waits its turn instead. Writers of one process also queue on a lock of
    their own first: SQLite's busy handler waits by sleeping (1, 2, 5 ... 100 ms), so under
    contention the file lock would sit free while every waiter sleeps. Other processes still
    meet the busy timeout. PostgreSQL needs nothing special.
    """
    if engine.dialect.name != "sqlite":
        with session_scope(engine) as session:
            yield session
        return
    with _write_lock(engine), session_scope(engine) as session:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        yield session


def driver_rows(session, query) -> list[tuple]:
    """A Core query's rows as the driver's plain tuples, read on the session's connection (so rows it has
    not committed are seen). SQLAlchemy's per-row objects and result processing are skipped: only integer
    and text columns are read this way, which the drivers return as they are.
    """
    result = session.connection().execute(query)
    try:
        return result.cursor.fetchall()
    finally:
        result.close()


def _alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to run any number of times."""
    from alembic import command

    check_connection(engine)
    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at; None for a database never upgraded."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
