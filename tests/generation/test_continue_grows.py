"""Continue always grows the text: after ``--max-tokens`` cut it, toward its target or by another
``--max-tokens``; a continuation that adds nothing says why in one line and exits non-zero. The
bundled model runs in real ``lwz`` processes; the model that adds nothing is scripted."""

from __future__ import annotations

import json

from storage.catalog import add_model, get_or_add_prompt
from storage.engine import make_engine, session_scope, upgrade
from storage.generations import create_generation, finish_generation
from tests.generation.test_cli import lwz
from tests.generation.test_control_logic import SizedBackend, words


def test_continue_after_max_tokens_grows_the_row(sqlite_url):
    assert lwz(sqlite_url, "models", "add", "small", "--backend", "local", "--template", "direct").returncode == 0
    for target in (["--target-words", "200"], []):  # toward the target; another --max-tokens without one
        first = lwz(sqlite_url, "generate", "--model", "small", "--prompt", "Write about the sea.", *target,
                    "--max-tokens", "12", "--seed", "4", "--json")
        assert first.returncode == 0, first.stderr
        cut = json.loads(first.stdout)
        assert cut["status"] == "truncated" and cut["answer_words"] > 0
        again = lwz(sqlite_url, "generate", "--continue", str(cut["id"]), "--json")
        assert again.returncode == 0, (target, again.stderr)
        grown = json.loads(again.stdout)
        assert grown["id"] == cut["id"] and grown["answer"].startswith(cut["answer"])
        assert grown["answer_words"] > cut["answer_words"] and grown["continuations"] == 1, target
        assert 0 < grown["completion_tokens"] - cut["completion_tokens"] <= 12  # another --max-tokens worth at most


def test_a_continue_that_adds_nothing_says_why_and_exits_non_zero(monkeypatch, sqlite_url, capsys):
    import generation.backends
    from lwz_cli.main import main

    backend = SizedBackend(at_most=50, exact=50, replies=[("", "stop")] * 2)
    monkeypatch.setattr(generation.backends, "backend_for", lambda entry: backend)
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        model = add_model(session, name="m", backend="openai", base_url="http://x/v1", model_id="m", template="direct")
        prompt, _ = get_or_add_prompt(session, text="Write a story.", source="test")
        row = create_generation(session, prompt_id=prompt.id, model_id=model.id,
                                params={"template": "direct", "seed": 5, "target_words": 500})
        finish_generation(session, generation_id=row.id, status="short", answer=words(40) + ".", answer_words=40)
    assert main(["--db", sqlite_url, "generate", "--continue", str(row.id)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"lwz: error: generation {row.id} did not grow: the model ended the text at once"
    assert len(backend.requests) >= 1
