"""Sign-in throttling, kept in the database so that every process sees the same failures.

The rule: once ``LIMIT`` sign-ins for one name, or from one client address, have failed within
``WINDOW``, every sign-in for that name (or from that address) is refused for ``LOCKOUT`` after the
last of them, the right password included. Refused attempts during a lockout are not counted
again, so a lockout ends on time. Successful sign-ins do not reset the count: that would let
someone who owns one account clear their address's failures between guesses.
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


def _key(value: str) -> str:
    return (value or "")[:KEY_CHARS]


def record_failure(session: Session, *, name: str, address: str, now: datetime | None = None) -> None:
    """Store one refused sign-in, and forget failures too old to matter."""
    now = now or utcnow()
    session.add(SigninFailure(name=_key(name), address=_key(address), created_at=now))
    session.execute(sa.delete(SigninFailure).where(SigninFailure.created_at < now - WINDOW - LOCKOUT))
    session.flush()


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
