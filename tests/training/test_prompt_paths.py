"""Prompt paths: ``--api completions|chat`` selects the raw LongWriter-Zero template on /v1/completions."""

from __future__ import annotations

import json

import pytest

from core.errors import UserError
from storage.catalog import add_model, get_model
from storage.engine import make_engine, session_scope


def test_models_add_api_reaches_the_backend(sqlite_url, capsys):
    from generation.backends import backend_for
    from lwz_cli.main import main

    base = ["--db", sqlite_url, "models", "add"]
    assert main(base + ["raw", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--api", "completions",
                        "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sampling"] == {"api": "completions"}
    assert main(base + ["chat", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sampling"] == {"api": "chat"}
    assert main(base + ["here", "--backend", "local", "--api", "completions"]) == 2
    assert "openai-backend model" in capsys.readouterr().err
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        assert backend_for(get_model(session, name="raw")).api == "completions"
        assert backend_for(get_model(session, name="chat")).api == "chat"
        assert get_model(session, name="here") is None
    engine.dispose()


def test_serve_api_is_recorded_on_openai_models_only(sqlite_engine):
    from lwz_cli.serve import _set_api

    with session_scope(sqlite_engine) as session:
        add_model(session, name="remote", backend="openai", base_url="http://127.0.0.1:9/v1", sampling={"api": "chat"})
        add_model(session, name="embedded", backend="local")
    _set_api(sqlite_engine, "remote", "completions")
    with session_scope(sqlite_engine) as session:
        assert get_model(session, name="remote").sampling["api"] == "completions"
    with pytest.raises(UserError, match="openai-backend model"):
        _set_api(sqlite_engine, "embedded", "completions")
