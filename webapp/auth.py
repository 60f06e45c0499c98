"""Who is asking, and may they? Checked inside every handler, on the server.

A hidden Gradio event can still be called with a raw POST, and ``gr.State`` is keyed by a
client-chosen session hash, so identity always comes from ``request.username`` (set by
Gradio's login, which checks the users table) and permissions from the user's role in the
database. Without ``--auth`` the app is in single-user local mode: every request acts as the
local admin user ``LOCAL_USER``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from storage.engine import session_scope
from core.errors import UserError
from storage.users import authenticate, get_or_create_user, get_user

LOCAL_USER = "local"

PERMISSIONS: dict[str, frozenset[str]] = {
    "write": frozenset({"writer", "researcher", "admin"}),
    "vote": frozenset({"annotator", "researcher", "admin"}),
    "leaderboard": frozenset({"researcher", "admin", "annotator", "writer"}),
    "data": frozenset({"researcher", "admin"}),
    "admin": frozenset({"admin"}),
}


class PermissionDenied(UserError):
    """The signed-in user (or a visitor) may not do this."""


@dataclass(frozen=True)
class Identity:
    user_id: int
    name: str
    role: str

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]


def password_checker(engine: Engine):
    """The callable for ``launch(auth=...)``: True when name and password match the users table."""

    def check(name: str, password: str) -> bool:
        with session_scope(engine) as session:
            return authenticate(session, name=name, password=password) is not None

    return check


def ensure_local_user(engine: Engine) -> None:
    with session_scope(engine) as session:
        get_or_create_user(session, name=LOCAL_USER, role="admin")


def identify(engine: Engine, *, username: str | None, auth: bool) -> Identity:
    """The identity behind a request. With auth on, a request without a signed-in user is refused."""
    name = username if auth else LOCAL_USER
    if not name:
        raise PermissionDenied("sign in first")
    with session_scope(engine) as session:
        user = get_user(session, name=name)
        if user is None:
            raise PermissionDenied(f"unknown user {name!r}: sign in again")
        return Identity(user_id=user.id, name=user.name, role=user.role)


def require(engine: Engine, *, username: str | None, auth: bool, action: str) -> Identity:
    """The identity, if it may do ``action``; PermissionDenied otherwise."""
    who = identify(engine, username=username, auth=auth)
    if not who.can(action):
        raise PermissionDenied(f"a {who.role} may not {action}; ask an admin for another role")
    return who
