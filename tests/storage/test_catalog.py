"""Models and prompts: registration, de-duplication and JSON-lines import."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from storage.catalog import (
    add_model, detect_language, get_model, get_or_add_prompt, import_prompts, list_models, list_prompts,
    parse_prompt_lines, prompt_hash,
)
from storage.engine import session_scope
from core.errors import UserError
from storage.models import Prompt
from tests.conftest import TEST_DATA

LONGBENCH = TEST_DATA / "longbench_write_en.jsonl"


def test_detect_language_and_hash():
    assert detect_language("Write a story about tea") == "en"
    assert detect_language("写一篇关于茶的故事") == "zh"
    assert detect_language("Mixed 中文 text") == "zh"
    assert prompt_hash("  Tea \n") == prompt_hash("Tea")
    assert prompt_hash("Café") == prompt_hash("Cafe\u0301")  # NFC: precomposed and combining forms agree
    assert prompt_hash("Tea") != prompt_hash("tea")
    assert len(prompt_hash("x")) == 64


def test_add_get_list_models(engine):
    with session_scope(engine) as session:
        base = add_model(session, name="base", backend="local", sampling={"temperature": 0.6})
        child = add_model(session, name="dpo-1", backend="openai", base_url="http://h:8000/v1", model_id="m",
                          template="direct", parent="base")
        assert child.parent_id == base.id
    with session_scope(engine) as session:
        assert [m.name for m in list_models(session)] == ["base", "dpo-1"]
        got = get_model(session, name="dpo-1")
        assert (got.backend, got.base_url, got.model_id, got.template) == ("openai", "http://h:8000/v1", "m", "direct")
        assert get_model(session, name="base").sampling == {"temperature": 0.6}
        assert get_model(session, name="missing") is None


def test_add_model_replace_updates_in_place(engine):
    with session_scope(engine) as session:
        first = add_model(session, name="m", backend="local")
    with session_scope(engine) as session:
        again = add_model(session, name="m", backend="openai", base_url="http://x/v1", replace=True)
        assert again.id == first.id and again.backend == "openai"
        assert len(list_models(session)) == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "gguf"}, "unknown backend 'gguf'"),
        ({"backend": "openai"}, "needs --base-url"),
        ({"backend": "local", "parent": "nobody"}, "parent model 'nobody' is not registered"),
    ],
)
def test_add_model_rejects_bad_input(engine, kwargs, message):
    """Storage checks what a row needs; the template's name is the template table's to check
    (``writing.models.register_model``, tested below)."""
    with pytest.raises(UserError, match=message):
        with session_scope(engine) as session:
            add_model(session, name="m", **kwargs)
    with session_scope(engine) as session:
        assert list_models(session) == []


def test_add_model_twice_without_replace_is_refused(engine):
    with session_scope(engine) as session:
        add_model(session, name="m", backend="local")
    with pytest.raises(UserError, match="already registered"):
        with session_scope(engine) as session:
            add_model(session, name="m", backend="local")


def test_get_or_add_prompt_deduplicates(engine):
    with session_scope(engine) as session:
        prompt, created = get_or_add_prompt(session, text="写一篇文章", category="essay", target_words=500, source="t")
        again, created_again = get_or_add_prompt(session, text="  写一篇文章\n", category="other")
        assert created and not created_again and again.id == prompt.id
        assert (prompt.language, prompt.category, prompt.target_words) == ("zh", "essay", 500)


def test_content_hash_unique_in_the_database(engine):
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(engine) as session:
            session.add(Prompt(text="a", content_hash=prompt_hash("a")))
            session.add(Prompt(text="a ", content_hash=prompt_hash("a ")))
            session.flush()


def test_parse_prompt_lines_good_and_blank_lines():
    lines = ['{"prompt": "A", "type": "Essay", "length": 300}\n', "\n", '{"prompt": "B"}\n']
    assert parse_prompt_lines(lines, source="f") == [
        {"text": "A", "category": "Essay", "target_words": 300},
        {"text": "B", "category": None, "target_words": None},
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "A"', "f:2: not valid JSON"),
        ('["A"]', "f:2: expected an object"),
        ('{"prompt": "  "}', "f:2: expected an object with a non-empty string 'prompt'"),
        ('{"prompt": "A", "length": -5}', "f:2: 'length' must be a positive integer"),
        ('{"prompt": "A", "length": true}', "f:2: 'length' must be a positive integer"),
    ],
)
def test_parse_prompt_lines_names_the_bad_line(line, message):
    with pytest.raises(UserError, match=message):
        parse_prompt_lines(['{"prompt": "ok"}', line], source="f")


def test_import_longbench_then_again_skips_all(engine):
    expected = [json.loads(line) for line in LONGBENCH.read_text(encoding="utf-8").splitlines()]
    with session_scope(engine) as session:
        assert import_prompts(session, path=LONGBENCH) == {"added": 60, "skipped": 0}
    with session_scope(engine) as session:
        assert import_prompts(session, path=LONGBENCH) == {"added": 0, "skipped": 60}
        prompts = list_prompts(session)
    assert [p.text for p in prompts] == [row["prompt"] for row in expected]
    assert [p.target_words for p in prompts] == [row["length"] for row in expected]
    assert {p.source for p in prompts} == {"longbench_write_en.jsonl"}
    category = expected[0]["type"]
    with session_scope(engine) as session:
        same = list_prompts(session, category=category)
        assert len(same) == sum(row["type"] == category for row in expected) and same
        assert len(list_prompts(session, limit=5)) == 5


def test_import_counts_duplicates_within_one_file(engine, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "A"}\n{"prompt": "B"}\n{"prompt": " A "}\n', encoding="utf-8")
    with session_scope(engine) as session:
        assert import_prompts(session, path=path) == {"added": 2, "skipped": 1}


@pytest.mark.parametrize("tail", [b'{"prompt": "C"\n', b'{"prompt": "caf\xe9"}\n'])
def test_import_with_a_bad_line_imports_nothing(engine, tmp_path, tail):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "A"}\n{"prompt": "B"}\n' + tail)
    with pytest.raises(UserError, match=r"p\.jsonl:3: "):
        with session_scope(engine) as session:
            import_prompts(session, path=path)
    with session_scope(engine) as session:
        assert list_prompts(session) == []


def test_import_missing_file(engine, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        with session_scope(engine) as session:
            import_prompts(session, path=tmp_path / "absent.jsonl")


def test_writers_adding_the_same_new_prompt_at_once_share_one_row(engine):
    # Two writers sending the same request at the same moment: each transaction finds no row and
    # inserts; the loser of the unique index reads the winner's row instead of failing.
    import threading

    from storage.engine import write_scope

    barrier, ids, errors = threading.Barrier(6), [], []

    def add(index: int) -> None:
        try:
            barrier.wait()
            with write_scope(engine) as session:
                prompt, _ = get_or_add_prompt(session, text="The same request, sent twice at once.")
                session.flush()
                ids.append(prompt.id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(ids) == 6 and len(set(ids)) == 1
    with session_scope(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Prompt)).scalar_one() == 1


def test_registering_an_unknown_template_is_refused_and_stores_nothing(engine):
    from writing.models import register_model

    with pytest.raises(UserError, match="unknown template 'chat'"):
        with session_scope(engine) as session:
            register_model(session, name="m", backend="local", template="chat")
    with session_scope(engine) as session:
        assert list_models(session) == []
