"""``lwz serve`` picks (and registers) the model the Write tab offers first."""

import pytest

from storage.catalog import add_model, get_model
from storage.engine import session_scope
from core.errors import UserError
from webapp.serving import settle_default_model


def test_defaults_to_the_bundled_model_registered_once(engine):
    assert settle_default_model(engine, backend=None, base_url=None, model=None) == "smollm2-135m"
    assert settle_default_model(engine, backend=None, base_url=None, model=None) == "smollm2-135m"
    with session_scope(engine) as s:
        entry = get_model(s, name="smollm2-135m")
        assert (entry.backend, entry.path) == ("local", None)


def test_openai_model_is_registered_and_repointed(engine):
    name = settle_default_model(engine, backend="openai", base_url="http://a:8000/v1", model="big")
    assert name == "big"
    settle_default_model(engine, backend=None, base_url="http://b:8000/v1", model="big")
    with session_scope(engine) as s:
        entry = get_model(s, name="big")
        assert (entry.backend, entry.base_url, entry.model_id) == ("openai", "http://b:8000/v1", "big")
    assert settle_default_model(engine, backend=None, base_url=None, model="big") == "big"


@pytest.mark.parametrize("kw,message", [
    (dict(backend="openai", base_url=None, model="x"), "needs --base-url"),
    (dict(backend="openai", base_url="http://h/v1", model=None), "needs --model"),
    (dict(backend=None, base_url=None, model="nope"), "'nope' is not registered"),
    (dict(backend="local", base_url=None, model="nope"), "lwz models add nope --backend local"),
])
def test_bad_combinations_say_what_to_do(engine, kw, message):
    with pytest.raises(UserError, match=message):
        settle_default_model(engine, **kw)


def test_a_remote_model_is_not_taken_for_a_local_one(engine):
    with session_scope(engine) as s:
        add_model(s, name="remote", backend="openai", base_url="http://h/v1")
    with pytest.raises(UserError, match="registered on the openai backend"):
        settle_default_model(engine, backend="local", base_url=None, model="remote")
