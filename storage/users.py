"""Users and passwords. Passwords are hashed with the standard library's scrypt."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from sqlmodel import Session, select

from core.errors import UserError
from storage.models import Role, User

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
VALID_ROLES = tuple(r.value for r in Role)


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$digest`` with a fresh random salt (standard library scrypt)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches ``encoded`` (from :func:`hash_password`); a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p),
            dklen=len(expected), maxmem=2**26,
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def validate_role(role: str) -> str:
    if role not in VALID_ROLES:
        raise UserError(f"unknown role {role!r}: choose one of {', '.join(VALID_ROLES)}")
    return role


def add_user(session: Session, *, name: str, role: str, password: str = "") -> User:
    validate_role(role)
    name = name.strip()
    if not name:
        raise UserError("a user needs a name")
    if get_user(session, name=name) is not None:
        raise UserError(f"user {name!r} already exists")
    user = User(name=name, role=role, password_hash=hash_password(password) if password else "")
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, *, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()


def get_or_create_user(session: Session, *, name: str, role: str) -> User:
    """The user called ``name``, created with ``role`` and no password if absent (local mode)."""
    return get_user(session, name=name) or add_user(session, name=name, role=role)


_DUMMY_HASH: list[str] = []


def _dummy_hash() -> str:
    """A hash with the same cost as a real one, checked for names that have none (made once)."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password(os.urandom(16).hex()))
    return _DUMMY_HASH[0]


def authenticate(session: Session, *, name: str, password: str) -> User | None:
    """The user if the password matches; None otherwise (and for users without a password).

    An unknown name, or a user without a password, still pays for one password hash, so the
    time taken does not tell which names exist.
    """
    user = get_user(session, name=name)
    if user is None or not user.password_hash:
        check_password(password, _dummy_hash())
        return None
    return user if check_password(password, user.password_hash) else None


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(User.id)))
