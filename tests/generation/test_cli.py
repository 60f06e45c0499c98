"""``lwz generate`` and ``lwz models prepare`` as a user runs them: real processes, a real
vLLM server, a real database file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from storage.engine import make_engine, session_scope, upgrade
from storage.generations import list_generations
from tests import helpers
from tests.conftest import default_sigint
from tests.generation.helpers import register

LWZ = [sys.executable, "-m", "lwz_cli.main"]


def lwz(db_url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return helpers.lwz(*args, db=db_url, stdin=stdin)


def test_bad_input_is_one_line_exit_2(sqlite_url):
    result = lwz(sqlite_url, "generate", "--model", "nope", "--prompt", "   ")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "empty" in result.stderr
    result = lwz(sqlite_url, "generate", "--model", "nope", "--prompt", "Write.", "--target-words", "0")
    assert result.returncode == 2 and "target" in result.stderr
    result = lwz(sqlite_url, "generate", "--model", "nope", "--prompt", "Write.")
    assert result.returncode == 2 and "no model named 'nope'" in result.stderr


def test_models_prepare_registers_bundled_model_once(sqlite_url):
    first = lwz(sqlite_url, "models", "prepare", "--json")
    second = lwz(sqlite_url, "models", "prepare", "--json")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["registered"] is True and two["registered"] is False and one["model"] == "smollm2-135m"
    assert one["folder"].endswith("smollm2-135m") and one["backend"] == "local"


@pytest.mark.slow
def test_generate_json_prints_one_object(sqlite_url, vllm_server):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url=vllm_server.base_url, model=vllm_server.model, template="think")
    result = lwz(sqlite_url, "generate", "--model", "vllm", "--prompt", "Write a note.", "--think-budget", "6",
                 "--max-tokens", "10", "--seed", "4", "--json")
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert set(value) == {"id", "status", "finish_reason", "think", "answer", "answer_words", "completion_tokens",
                          "ttft_ms", "duration_ms", "ending", "continuations", "method", "loops_stopped"}
    assert value["think"] and value["answer"] and value["status"] in ("complete", "truncated")


@pytest.mark.slow
def test_generate_streams_answer_to_stdout_and_summary_to_stderr(sqlite_url, vllm_server):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url=vllm_server.base_url, model=vllm_server.model, template="think")
    result = lwz(sqlite_url, "generate", "--model", "vllm", "--prompt", "Write a note.", "--think-budget", "6",
                 "--max-tokens", "10", "--seed", "4")
    assert result.returncode == 0, result.stderr
    with session_scope(engine) as session:
        gen = list_generations(session)[0]
    assert result.stdout.strip() == gen.answer
    assert gen.think in result.stderr and f"generation {gen.id}: {gen.status}" in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_batch_runs_then_resumes(sqlite_url, vllm_server, tmp_path):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    prompts = tmp_path / "prompts.jsonl"
    lines = [{"prompt": "Write about rain.", "type": "Poem", "length": 5},
             {"prompt": "Write about wind.", "type": "Poem", "length": 5}]
    prompts.write_text("\n".join(json.dumps(x) for x in lines[:1]) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", "vllm", "--prompts", str(prompts), "--out", str(out), "--max-tokens", "12", "--json"]
    first = lwz(sqlite_url, *args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["done"] == 1
    prompts.write_text("\n".join(json.dumps(x) for x in lines) + "\n")  # one more prompt: only it runs
    second = lwz(sqlite_url, *args, "--concurrency", "2")
    summary = json.loads(second.stdout)
    assert second.returncode == 0 and summary["done"] == 1 and summary["skipped"] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["Write about rain.", "Write about wind."]
    assert all(r["answer"] and r["type"] == "Poem" for r in rows)
    with session_scope(engine) as session:
        assert sorted(g.id for g in list_generations(session)) == sorted(r["id"] for r in rows)


def test_batch_with_a_bad_line_writes_nothing(sqlite_url, tmp_path):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url="http://127.0.0.1:9/v1", model="m")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ok"}\n{"prompt": "fine", "length": 0}\n')
    out = tmp_path / "out.jsonl"
    result = lwz(sqlite_url, "generate", "--model", "vllm", "--prompts", str(prompts), "--out", str(out))
    assert result.returncode == 2 and ":2:" in result.stderr and not out.exists()


def _wait_for_partial_text(engine, deadline_s: float = 300):
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with session_scope(engine) as session:
            rows = list_generations(session)
        if rows and rows[0].answer.strip():
            return rows[0]
        time.sleep(0.5)
    raise AssertionError("no partial text was saved")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_process_killed_mid_stream_leaves_partial_text(sqlite_url, vllm_server, how):
    import signal

    from storage.generations import get_generation, mark_stale_interrupted

    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    process = subprocess.Popen([*LWZ, "--db", sqlite_url, "generate", "--model", "vllm", "--prompt",
                                "Write a very long story about a lighthouse keeper.", "--target-words", "1500"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        partial = _wait_for_partial_text(engine)
        process.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    with session_scope(engine) as session:
        gen = get_generation(session, generation_id=partial.id)
        if how == "sigkill":  # nothing ran at exit: the row waits for the stale-row sweep
            assert gen.status == "streaming" and gen.answer.startswith(partial.answer)
            assert mark_stale_interrupted(session, older_than_s=0) == 1
    with session_scope(engine) as session:
        gen = get_generation(session, generation_id=partial.id)
    assert gen.status == "interrupted" and gen.answer.startswith(partial.answer) and gen.answer_words > 0
    if how == "sigint":
        assert process.returncode == 130 and "interrupted" in stderr


@pytest.mark.slow
def test_continue_grows_the_same_row_in_a_fresh_process(sqlite_url, vllm_server):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    register(engine, "vllm", base_url=vllm_server.base_url, model=vllm_server.model, template="direct")
    first = lwz(sqlite_url, "generate", "--model", "vllm", "--prompt", "Write about the sea.", "--max-tokens", "12",
                "--seed", "4", "--json")
    assert first.returncode == 0, first.stderr
    cut = json.loads(first.stdout)
    assert cut["status"] == "truncated"
    again = lwz(sqlite_url, "generate", "--continue", str(cut["id"]), "--json")
    assert again.returncode == 0, again.stderr
    grown = json.loads(again.stdout)
    assert grown["id"] == cut["id"] and grown["answer"].startswith(cut["answer"])
    assert grown["answer_words"] > cut["answer_words"] and grown["continuations"] == 1
    assert grown["completion_tokens"] > cut["completion_tokens"]
    with session_scope(engine) as session:
        (row,) = list_generations(session)
        (record,) = row.params["continuations"]
        assert record["from_words"] == cut["answer_words"] and record["to_words"] == grown["answer_words"]


def test_continue_refuses_in_one_line(sqlite_url):
    import sqlalchemy as sa

    from storage.catalog import add_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation
    from storage.models import Generation, User

    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        model = add_model(session, name="m", backend="openai", base_url="http://127.0.0.1:9/v1", model_id="m",
                          template="direct")
        prompt, _ = get_or_add_prompt(session, text="Write.", source="test")
        user = User(name="ann", role="writer")
        session.add(user)
        session.flush()
        ids = {}
        for name, author, status in (("theirs", user.id, "interrupted"), ("live", None, "streaming"),
                                     ("done", None, "complete")):
            row = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={"target_words": 50},
                                    author_id=author)
            if status != "streaming":
                finish_generation(session, generation_id=row.id, status=status, answer="Some text.", answer_words=2)
            ids[name] = row.id
        session.exec(sa.update(Generation).where(Generation.id == ids["live"]).values(updated_at=sa.func.now()))
    for name, words in (("theirs", "belongs to another writer"), ("live", "still being written"),
                        ("done", "is complete"), (None, "no generation 999")):
        result = lwz(sqlite_url, "generate", "--continue", str(ids.get(name, 999)))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    result = lwz(sqlite_url, "generate", "--continue", str(ids["done"]), "--model", "m")
    assert result.returncode == 2 and "drop --model" in result.stderr
