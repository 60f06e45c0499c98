"""Users, roles and scrypt password hashes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from core.errors import UserError
from storage.models import User
from storage.users import (
    VALID_ROLES, add_user, authenticate, check_password, get_or_create_user, get_user, hash_password, list_users,
    validate_role,
)


def test_password_hash_round_trip():
    encoded = hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", encoded)
    assert not check_password("correct horsE", encoded)
    assert hash_password("correct horse") != encoded  # fresh salt each time
    assert check_password("ünïcødé 密码", hash_password("ünïcødé 密码"))


@pytest.mark.parametrize("encoded", ["", "plain", "md5$1$1$1$AA==$AA==", "scrypt$x$8$1$AA==$AA==",
                                     "scrypt$16384$8$1$!!$AA=="])
def test_malformed_hashes_never_match(encoded):
    assert check_password("anything", encoded) is False


def test_validate_role_lists_valid_roles():
    assert VALID_ROLES == ("writer", "annotator", "researcher", "admin")
    for role in VALID_ROLES:
        assert validate_role(role) == role
    with pytest.raises(UserError, match="unknown role 'boss': choose one of writer, annotator, researcher, admin"):
        validate_role("boss")


def test_add_get_list_authenticate(engine):
    with session_scope(engine) as session:
        ann = add_user(session, name=" ann ", role="annotator", password="pw")
        add_user(session, name="local", role="admin")
    assert ann.name == "ann"
    with session_scope(engine) as session:
        assert [(u.name, u.role) for u in list_users(session)] == [("ann", "annotator"), ("local", "admin")]
        assert get_user(session, name="ann").password_hash != "pw"
        assert get_user(session, name="nobody") is None
        assert authenticate(session, name="ann", password="pw").id == ann.id
        assert authenticate(session, name="ann", password="wrong") is None
        assert authenticate(session, name="nobody", password="pw") is None
        assert authenticate(session, name="local", password="") is None  # no password: cannot sign in


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "x", "role": "boss"}, "unknown role"),
    ({"name": "   ", "role": "writer"}, "needs a name"),
])
def test_add_user_rejects_bad_input(engine, kwargs, message):
    with pytest.raises(UserError, match=message):
        with session_scope(engine) as session:
            add_user(session, **kwargs)


def test_duplicate_user_refused_by_code_and_database(engine):
    with session_scope(engine) as session:
        add_user(session, name="ann", role="writer")
    with pytest.raises(UserError, match="already exists"):
        with session_scope(engine) as session:
            add_user(session, name="ann", role="writer")
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            session.add(User(name="ann", role="writer"))
            session.flush()


def test_get_or_create_user(engine):
    with session_scope(engine) as session:
        created = get_or_create_user(session, name="local", role="admin")
    with session_scope(engine) as session:
        again = get_or_create_user(session, name="local", role="writer")
    assert again.id == created.id and again.role == "admin"
