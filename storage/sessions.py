"""Sign-in sessions in the database, so that every process on it honours them.

A session is a random token held by the browser in a cookie; the table keeps only its SHA-256,
so whoever reads the database cannot sign in as anyone. A session ends when it expires or is
revoked; signing out revokes every session of that user, on every process at once, because
every process asks this table on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import User, UserSession, utcnow

SESSION_TTL = timedelta(days=7)
"""How long a sign-in lasts without signing in again."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_session(session: Session, *, user_id: int, ttl: timedelta = SESSION_TTL,
                   now: datetime | None = None, address: str | None = None) -> str:
    """A new session for ``user_id``; returns the token to hand to the browser (never stored).
    ``address``: the client address it came from, kept for vote hygiene."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=token_hash(token), user_id=user_id, created_at=now, expires_at=now + ttl,
                            address=(address or None) and address[:64]))
    session.flush()
    return token


def session_user(session: Session, *, token: str | None, now: datetime | None = None) -> User | None:
    """The user of a live session (not expired, not revoked); None for any other token."""
    if not token or len(token) > 256:
        return None
    now = now or utcnow()
    row = session.execute(
        sa.select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_hash(token), UserSession.revoked_at.is_(None),
               UserSession.expires_at > now)
    ).first()
    return row[0] if row is not None else None


_U, _S = User.__table__, UserSession.__table__
_IDENTITY = (
    sa.select(_U.c.id, _U.c.name, _U.c.role)
    .join(_S, _S.c.user_id == _U.c.id)
    .where(_S.c.token_hash == sa.bindparam("token_hash"), _S.c.revoked_at.is_(None),
           _S.c.expires_at > sa.bindparam("now"))
)


def session_identity_row(connection, *, token: str | None, now: datetime | None = None) -> tuple[int, str, str] | None:
    """``(user_id, name, role)`` of a live session's user, as :func:`session_user` decides, in one Core query.

    Every request of the arena's hot path asks this, so it skips building ORM objects.
    """
    if not token or len(token) > 256:
        return None
    row = connection.execute(_IDENTITY, {"token_hash": token_hash(token), "now": now or utcnow()}).first()
    return (row[0], row[1], row[2]) if row is not None else None


def revoke_user_sessions(session: Session, *, user_id: int, now: datetime | None = None) -> int:
    """End every live session of ``user_id``; returns how many were live."""
    result = session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return result.rowcount or 0


def purge_sessions(session: Session, *, older_than: timedelta = timedelta(days=1), now: datetime | None = None) -> int:
    """Delete sessions that expired or were revoked more than ``older_than`` ago."""
    cutoff = (now or utcnow()) - older_than
    result = session.execute(
        sa.delete(UserSession).where(sa.or_(UserSession.expires_at < cutoff, UserSession.revoked_at < cutoff))
    )
    return result.rowcount or 0
