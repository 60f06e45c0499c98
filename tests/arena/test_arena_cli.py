"""``lwz battles fill|form|list`` against the real vLLM server, and its bad input."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from lwz_cli.main import main
from storage.catalog import add_model
from storage.engine import make_engine, session_scope, upgrade
from storage.models import Battle, Generation
from tests.arena.test_arena_live import in_thread


def lwz(capsys, *argv) -> tuple[int, str, str]:
    code = in_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        json.dumps({"prompt": "Write two sentences about a lighthouse.", "type": "prose"}) + "\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_fill_generates_forms_battles_resumes_and_never_pools_failures(sqlite_url, vllm_server, prompts_file, capsys):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        for name, template in (("vl-a", "direct"), ("vl-b", "direct")):
            add_model(session, name=name, backend="openai", base_url=vllm_server.base_url,
                      model_id=vllm_server.model, template=template)
        add_model(session, name="dead", backend="openai", base_url="http://127.0.0.1:9/v1", template="direct")
    args = ("--db", sqlite_url, "battles", "fill", "--prompts", str(prompts_file), "--models",
            "vl-a,vl-b,dead", "--per-prompt", "1", "--max-tokens", "200", "--concurrency", "4",
            "--seed", "7", "--json")
    code, out, _ = lwz(capsys, *args)
    summary = json.loads(out)
    assert code == 0, out
    assert summary["generated"] == 3 and summary["complete"] + summary["not_complete"] == 3
    assert summary["statuses"]["refused"] == 1  # the dead backend: refused before a row is written
    with session_scope(engine) as session:
        gens = {g.id: g for g in session.exec(sa.select(Generation)).scalars()}
        battles = list(session.exec(sa.select(Battle)).scalars())
        pooled = {g.id for g in gens.values() if g.in_pool}
        assert all(gens[g].status == "complete" for g in pooled)
        assert summary["battles_formed"] == len(battles) == summary["battles_total"]
        assert summary["complete"] == 2 and len(battles) == 1
        for battle in battles:
            left, right = gens[battle.left_generation_id], gens[battle.right_generation_id]
            assert {left.status, right.status} == {"complete"} and left.model_id != right.model_id
            assert battle.extra["seed"] == 7 and "names_model" in battle.extra
    complete_pairs = summary["complete"]
    code, out, _ = lwz(capsys, *args)
    again = json.loads(out)
    assert again["already_done"] == complete_pairs and again["generated"] == 3 - complete_pairs
    code, out, _ = lwz(capsys, "--db", sqlite_url, "battles", "list", "--json")
    assert len(json.loads(out)) == len(battles)


@pytest.mark.parametrize("argv,message", [
    (["--models", "a"], "at least two different registered models"),
    (["--models", "a,b", "--per-prompt", "0"], "--per-prompt must be at least 1"),
    (["--models", "a,b", "--concurrency", "0"], "--concurrency must be at least 1"),
    (["--models", "nobody,nothing"], "no model named 'nobody'"),
])
def test_fill_bad_input_is_one_line(sqlite_url, prompts_file, capsys, argv, message):
    code, out, err = lwz(capsys, "--db", sqlite_url, "battles", "fill", "--prompts", str(prompts_file), *argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_fill_missing_file_and_form_on_empty_pool(sqlite_url, tmp_path, capsys):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        add_model(session, name="a", backend="local")
        add_model(session, name="b", backend="local")
    code, _, err = lwz(capsys, "--db", sqlite_url, "battles", "fill", "--prompts", str(tmp_path / "no.jsonl"),
                       "--models", "a,b")
    assert code == 2 and "no such file" in err
    code, out, _ = lwz(capsys, "--db", sqlite_url, "battles", "form", "--json")
    assert code == 0 and json.loads(out) == {"battles_formed": 0, "battle_ids": []}
