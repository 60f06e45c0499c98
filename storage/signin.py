"""Sign-in throttling, kept in the database so that every process sees the same failures.

The rule: once ``LIMIT`` sign-ins for one name, or from one client address, have failed within
``WINDOW``, every sign-in for that name (or from that address) is refused for ``LOCKOUT`` after the
last of them, the right password included. Refused attempts during a lockout are not counted
again, so a lockout ends on time. Successful sign-ins do not reset the count: that would let
someone who owns one account clear their address's failures between guesses.

The count is exact under concurrency, across processes: :func:`reserve_attempt` decides and
stores in one transaction that holds a lock (SQLite's write lock, taken at BEGIN IMMEDIATE by
``storage.engine.write_scope``; a PostgreSQL transaction-level advisory lock), and it stores the
attempt as a failure *before* the password is checked. Forty parallel wrong sign-ins for one
name therefore get exactly ``LIMIT`` password checks; a sign-in that succeeds takes its own row
back (:func:`clear_attempt`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import SigninFailure, utcnow

LIMIT = 10
WINDOW = timedelta(minutes=5)
LOCKOUT = timedelta(minutes=5)
KEY_CHARS = 64
_ADVISORY_KEY = 0x6C777A_5349474E  # "lwz" "SIGN": the one PostgreSQL advisory lock sign-in attempts take


def _key(value: str) -> str:
    return (value or "")[:KEY_CHARS]


def record_failure(session: Session, *, name: str, address: str, now: datetime | None = None) -> int:
    """Store one refused sign-in, and forget failures too old to matter; returns the row's id."""
    now = now or utcnow()
    row = SigninFailure(name=_key(name), address=_key(address), created_at=now)
    session.add(row)
    session.execute(sa.delete(SigninFailure).where(SigninFailure.created_at < now - WINDOW - LOCKOUT))
    session.flush()
    return row.id


def reserve_attempt(session: Session, *, name: str, address: str,
                    now: datetime | None = None) -> tuple[int | None, datetime | None]:
    """Decide whether a sign-in may check its password, atomically: ``(attempt id, None)`` when it may
    (the attempt is already stored as a failure), ``(None, locked until)`` when a lockout holds.

    Call it in a write transaction (``storage.engine.write_scope``) and commit before checking the
    password, so that concurrent attempts, on any process, see each other.
    """
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_KEY)))
    until = locked_until(session, name=name, address=address, now=now)
    if until is not None:
        return None, until
    return record_failure(session, name=name, address=address, now=now), None


def clear_attempt(session: Session, *, attempt_id: int) -> None:
    """A reserved attempt whose password was right: it was no failure after all."""
    session.execute(sa.delete(SigninFailure).where(SigninFailure.id == attempt_id))


def _locked_until(times: list[datetime]) -> datetime | None:
    """The end of the latest lockout that ``times`` (ascending) trigger, if any."""
    end = None
    for i in range(LIMIT - 1, len(times)):
        if times[i] - times[i - LIMIT + 1] < WINDOW:
            end = times[i] + LOCKOUT
    return end


def locked_until(session: Session, *, name: str, address: str, now: datetime | None = None) -> datetime | None:
    """When sign-ins for ``name`` or from ``address`` may be tried again; None when they may now."""
    now = now or utcnow()
    since = now - WINDOW - LOCKOUT
    ends = []
    for column, value in ((SigninFailure.name, _key(name)), (SigninFailure.address, _key(address))):
        times = list(session.execute(
            sa.select(SigninFailure.created_at).where(column == value, SigninFailure.created_at > since)
            .order_by(SigninFailure.created_at)
        ).scalars())
        end = _locked_until(times)
        if end is not None and end > now:
            ends.append(end)
    return max(ends) if ends else None
