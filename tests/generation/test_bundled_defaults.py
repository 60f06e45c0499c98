"""The bundled model's defaults belong to the model: every command that registers it gives the
same repetition penalty and the same template (``auto``, with the length it holds in one request)."""

from __future__ import annotations

import json

from tests.generation.test_cli import lwz


def test_every_way_of_registering_the_bundled_model_gives_its_own_defaults(sqlite_url):
    prepared = lwz(sqlite_url, "models", "prepare", "--json")
    assert prepared.returncode == 0, prepared.stderr
    assert json.loads(prepared.stdout)["template"] == "auto"
    for args in (["mine", "--backend", "local"], ["planned", "--backend", "local", "--template", "plan"]):
        added = lwz(sqlite_url, "models", "add", *args, "--json")
        assert added.returncode == 0, added.stderr
    listed = {m["name"]: m for m in json.loads(lwz(sqlite_url, "models", "list", "--json").stdout)}
    bundled = listed["smollm2-135m"]
    assert bundled["sampling"] == {"repetition_penalty": 1.1, "one_request_words": 500, "languages": ["en"]}
    assert listed["mine"]["template"] == "auto" and listed["mine"]["sampling"] == bundled["sampling"]
    assert listed["planned"]["template"] == "plan" and listed["planned"]["sampling"]["repetition_penalty"] == 1.1


def test_what_the_person_says_wins_and_auto_needs_a_measured_length(sqlite_url):
    own = lwz(sqlite_url, "models", "add", "own", "--backend", "local", "--repetition-penalty", "1.05", "--json")
    assert own.returncode == 0 and json.loads(own.stdout)["sampling"]["repetition_penalty"] == 1.05
    other = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--template", "auto"]
    refused = lwz(sqlite_url, "models", "add", "remote", *other)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--one-request-words" in refused.stderr
    added = lwz(sqlite_url, "models", "add", "remote", *other, "--one-request-words", "1500", "--json")
    assert added.returncode == 0 and json.loads(added.stdout)["sampling"] == {"api": "chat", "one_request_words": 1500}
    plain = lwz(sqlite_url, "models", "add", "plain", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--json")
    assert json.loads(plain.stdout)["template"] == "think" and "repetition_penalty" not in json.loads(plain.stdout)["sampling"]
