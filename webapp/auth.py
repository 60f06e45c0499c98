"""Who is asking, and may they? Checked inside every handler, on the server.

A hidden Gradio event can still be called with a raw POST, and ``gr.State`` is keyed by a
client-chosen session hash, so identity always comes from ``request.username`` (set by
Gradio's login, which checks the users table) and permissions from the user's role in the
database. Without ``--auth`` the app is in single-user local mode: every request acts as the
local admin user ``LOCAL_USER``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import session_scope, write_scope
from core.errors import UserError
from storage.models import User
from storage.users import authenticate, get_or_create_user

log = logging.getLogger("lwz.auth")

LOCAL_USER = "local"

PERMISSIONS: dict[str, frozenset[str]] = {
    "write": frozenset({"writer", "researcher", "admin"}),
    "vote": frozenset({"annotator", "researcher", "admin"}),
    "leaderboard": frozenset({"researcher", "admin", "annotator", "writer"}),
    "data": frozenset({"researcher", "admin"}),
    "admin": frozenset({"admin"}),
}


_BY_NAME = sa.select(User.__table__.c.id, User.__table__.c.name, User.__table__.c.role).where(
    User.__table__.c.name == sa.bindparam("name"))


class PermissionDenied(UserError):
    """The signed-in user (or a visitor) may not do this."""


@dataclass(frozen=True)
class Identity:
    user_id: int
    name: str
    role: str

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]


class SigninThrottled(UserError):
    """Too many failed sign-ins for this name or from this address; ``retry_after`` seconds to wait."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")


class SigninRefused(UserError):
    """Wrong name or password (the message never says which)."""


def sign_in(engine: Engine, *, name: str, password: str, address: str) -> str:
    """A new session token for ``name`` if the password matches and no throttle holds.

    Blocking (a deliberately slow password hash): call it off the event loop. Raises
    SigninThrottled while a lockout holds (checked before the password, so the right one is
    refused too) and SigninRefused for a wrong name or password. Both are logged with the name
    and the client address. See :mod:`storage.signin` for the rule: the attempt is counted
    before its password is checked, so concurrent sign-ins cannot check more than the limit.
    """
    from storage.models import utcnow
    from storage.sessions import create_session
    from storage.signin import clear_attempt, reserve_attempt

    now = utcnow()
    with write_scope(engine) as session:  # decided and counted at once, before the password is checked
        attempt, until = reserve_attempt(session, name=name, address=address, now=now)
    if until is not None:
        wait = max(1, math.ceil((until - now).total_seconds()))
        log.warning("sign-in throttled: name=%r address=%s retry_after=%ds", name[:64], address, wait)
        raise SigninThrottled(wait)
    with session_scope(engine) as session:
        user = authenticate(session, name=name, password=password)
        user_id = user.id if user is not None else None
    if user_id is not None:
        with write_scope(engine) as session:
            clear_attempt(session, attempt_id=attempt)
            return create_session(session, user_id=user_id, address=address)
    log.warning("sign-in failed: name=%r address=%s", name[:64], address)
    raise SigninRefused("Incorrect credentials.")


def session_identity(engine: Engine, token: str | None) -> Identity | None:
    """Who holds the live session ``token`` (one query); None for any other token."""
    from storage.sessions import session_identity_row

    if not token:
        return None
    with engine.connect() as connection:
        row = session_identity_row(connection, token=token)
    return Identity(*row) if row is not None else None


def session_user_name(engine: Engine, token: str | None) -> str | None:
    """The name of the user whose live session ``token`` is; None for anything else."""
    who = session_identity(engine, token)
    return who.name if who is not None else None


def sign_out(engine: Engine, token: str | None) -> str | None:
    """End every session of the user ``token`` belongs to, on every process; returns the name."""
    from storage.sessions import revoke_user_sessions, session_user

    if not token:
        return None
    with write_scope(engine) as session:
        user = session_user(session, token=token)
        if user is None:
            return None
        revoke_user_sessions(session, user_id=user.id)
        return user.name


def ensure_local_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        get_or_create_user(session, name=LOCAL_USER, role="admin")


def identify(engine: Engine, *, username: str | None, auth: bool) -> Identity:
    """The identity behind a request. With auth on, a request without a signed-in user is refused."""
    name = username if auth else LOCAL_USER
    if not name:
        raise PermissionDenied("sign in first")
    with engine.connect() as connection:
        row = connection.execute(_BY_NAME, {"name": name}).first()
    if row is None:
        raise PermissionDenied(f"unknown user {name!r}: sign in again")
    return Identity(*row)


def require(engine: Engine, *, username: str | None, auth: bool, action: str) -> Identity:
    """The identity, if it may do ``action``; PermissionDenied otherwise."""
    who = identify(engine, username=username, auth=auth)
    if not who.can(action):
        raise PermissionDenied(f"a {who.role} may not {action}; ask an admin for another role")
    return who
