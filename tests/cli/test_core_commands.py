"""The ``lwz`` entry point, run for real in subprocesses: help, --json, imports, users, models, bad input."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import REPO_ROOT, TEST_DATA
from tests.helpers import LWZ, lwz
from tests.storage.helpers import head_revision

LONGBENCH = TEST_DATA / "longbench_write_en.jsonl"


def one_json(done: subprocess.CompletedProcess):
    """The single JSON value on stdout (json.loads refuses trailing text, so a second value fails)."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lwz: error: ") and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert done.stdout == ""


def test_help_lists_commands_and_loads_nothing_heavy():
    done = lwz("--help")
    assert done.returncode == 0, done.stderr
    for command in ("db", "models", "prompts", "users", "serve", "--db URL"):
        assert command in done.stdout
    probe = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "-c",
         "import sys; from lwz_cli.main import build_parser; build_parser(); "
         "print(sorted(m for m in ('torch', 'gradio', 'sqlalchemy', 'pandas', 'transformers') if m in sys.modules))"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]"


def test_subcommand_help():
    for args in (("prompts", "import", "--help"), ("users", "add", "--help"), ("models", "add", "--help")):
        done = lwz(*args)
        assert done.returncode == 0 and "usage: lwz" in done.stdout


def test_db_upgrade_twice_and_default_url(tmp_path):
    for _ in range(2):
        done = lwz("db", "upgrade", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert f"revision {head_revision()}" in done.stderr
    assert (tmp_path / "lwz.db").is_file()
    assert one_json(lwz("db", "upgrade", "--json", cwd=tmp_path)) == {"revision": head_revision()}


def test_database_url_from_environment(tmp_path):
    env = {**os.environ, "LWZ_DATABASE_URL": f"sqlite:///{tmp_path / 'env.db'}"}
    done = subprocess.run([str(LWZ), "models", "list", "--json"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert json.loads(done.stdout) == []
    assert (tmp_path / "env.db").is_file() and not (tmp_path / "lwz.db").exists()


def test_prompts_import_list_and_duplicates(db_url):
    first = one_json(lwz("prompts", "import", str(LONGBENCH), "--json", db=db_url))
    assert first == {"added": 60, "skipped": 0}
    again = lwz("prompts", "import", str(LONGBENCH), db=db_url)
    assert again.returncode == 0 and again.stdout.strip() == "imported 0 prompts, skipped 60 duplicates"
    listed = one_json(lwz("prompts", "list", "--json", db=db_url))
    expected = [json.loads(line) for line in LONGBENCH.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in listed] == [row["prompt"] for row in expected]
    assert [row["category"] for row in listed] == [row["type"] for row in expected]
    assert [row["target_words"] for row in listed] == [row["length"] for row in expected]
    assert all(row["created_at"].endswith("+00:00") for row in listed)
    limited = one_json(lwz("prompts", "list", "--limit", "3", "--category", expected[0]["type"], "--json",
                           db=db_url))
    assert 1 <= len(limited) <= 3 and {row["category"] for row in limited} == {expected[0]["type"]}
    table = lwz("prompts", "list", "--limit", "2", db=db_url)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == [
        "id", "category", "target_words", "language", "text"]


def test_prompts_import_counts_partial_duplicates(sqlite_url, tmp_path):
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(LONGBENCH.read_text(encoding="utf-8").splitlines()[:10]) + "\n", encoding="utf-8")
    assert one_json(lwz("prompts", "import", str(part), "--json", db=sqlite_url)) == {"added": 10, "skipped": 0}
    assert one_json(lwz("prompts", "import", str(LONGBENCH), "--json", db=sqlite_url)) == {"added": 50,
                                                                                           "skipped": 10}


def test_malformed_line_names_it_and_imports_nothing(db_url, tmp_path):
    lines = LONGBENCH.read_text(encoding="utf-8").splitlines()[:5]
    lines.insert(3, '{"prompt": "unterminated')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_one_line_error(lwz("prompts", "import", str(bad), db=db_url), "bad.jsonl:4:", "not valid JSON")
    assert one_json(lwz("prompts", "list", "--json", db=db_url)) == []


def test_missing_import_file(sqlite_url, tmp_path):
    assert_one_line_error(lwz("prompts", "import", str(tmp_path / "none.jsonl"), db=sqlite_url), "no such file")


def test_users_add_with_password_stdin(db_url):
    added = one_json(lwz("users", "add", "ann", "--role", "annotator", "--password-stdin", "--json",
                         db=db_url, stdin="s3cret pass\n"))
    assert added["name"] == "ann" and added["role"] == "annotator" and "password_hash" not in added
    plain = lwz("users", "add", "rita", "--role", "researcher", "--password-stdin", db=db_url, stdin="pw\n")
    assert plain.returncode == 0 and plain.stdout.strip() == "added researcher rita"
    listed = one_json(lwz("users", "list", "--json", db=db_url))
    assert [(u["name"], u["role"]) for u in listed] == [("ann", "annotator"), ("rita", "researcher")]
    assert all("password_hash" not in u for u in listed)

    from storage.engine import make_engine, session_scope
    from storage.users import authenticate

    engine = make_engine(db_url)
    with session_scope(engine) as session:
        assert authenticate(session, name="ann", password="s3cret pass") is not None
        assert authenticate(session, name="ann", password="s3cret pass\n") is None
    engine.dispose()
    assert_one_line_error(lwz("users", "add", "ann", "--role", "writer", "--password-stdin", db=db_url,
                              stdin="x\n"), "already exists")


def test_users_add_refuses_empty_password(sqlite_url):
    assert_one_line_error(lwz("users", "add", "bob", "--role", "writer", "--password-stdin", db=sqlite_url,
                              stdin="\n"), "password is empty")


def test_unknown_role_lists_valid_roles(sqlite_url):
    assert_one_line_error(
        lwz("users", "add", "bob", "--role", "boss", "--password-stdin", db=sqlite_url, stdin="pw\n"),
        "unknown role 'boss'", "writer, annotator, researcher, admin",
    )


def test_models_add_and_list(db_url):
    local = one_json(lwz("models", "add", "smol", "--backend", "local", "--template", "direct", "--json", db=db_url))
    assert (local["name"], local["backend"], local["template"], local["model_id"]) == ("smol", "local", "direct", None)
    remote = lwz("models", "add", "lwz-dev", "--backend", "openai", "--base-url", "http://127.0.0.1:8100/v1",
                 "--model-id", "smollm2-135m", "--parent", "smol", db=db_url)
    # A server that serves the bundled model gets the bundled model's own defaults (template auto).
    assert remote.returncode == 0 and remote.stdout.strip() == "registered model lwz-dev (openai, template auto)"
    listed = one_json(lwz("models", "list", "--json", db=db_url))
    assert [(m["name"], m["backend"], m["base_url"], m["model_id"]) for m in listed] == [
        ("smol", "local", None, None), ("lwz-dev", "openai", "http://127.0.0.1:8100/v1", "smollm2-135m")]
    assert listed[1]["parent_id"] == listed[0]["id"]
    table = lwz("models", "list", db=db_url)
    assert table.returncode == 0 and "lwz-dev" in table.stdout and "smol" in table.stdout
    assert_one_line_error(lwz("models", "add", "smol", "--backend", "local", db=db_url), "already registered")
    assert_one_line_error(lwz("models", "add", "x", "--backend", "openai", db=db_url), "needs --base-url")


def test_models_add_default_model_id_for_openai(sqlite_url):
    entry = one_json(lwz("models", "add", "served", "--backend", "openai", "--base-url", "http://h/v1", "--json",
                         db=sqlite_url))
    assert entry["model_id"] == "served"


def test_empty_listings_print_json_arrays(sqlite_url):
    for group in ("models", "prompts", "users"):
        assert one_json(lwz(group, "list", "--json", db=sqlite_url)) == []


@pytest.mark.parametrize(
    "url, fragments",
    [
        ("not a url", ["not a database URL"]),
        ("mysql://u@h/d", ["unsupported database 'mysql'"]),
        ("postgresql://postgres:hunter2@127.0.0.1:1/none", ["cannot reach database", "127.0.0.1:1"]),
        ("postgresql://postgres@127.0.0.1:5432/lwz_no_such_database", ["does not exist"]),
        ("sqlite:////proc/lwz-missing/lwz.db", ["does not exist: create it first"]),
    ],
)
def test_bad_or_unreachable_database_is_one_line_exit_2(url, fragments):
    done = lwz("models", "list", "--json", db=url)
    assert_one_line_error(done, *fragments)
    assert "hunter2" not in done.stderr


def test_not_a_database_file(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    assert_one_line_error(lwz("db", "upgrade", db=f"sqlite:///{junk}"), "file is not a database")


def test_read_only_database_fails_in_one_line(tmp_path):
    path = tmp_path / "ro.db"
    assert lwz("db", "upgrade", db=f"sqlite:///{path}").returncode == 0
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert one_json(lwz("models", "list", "--json", db=read_only)) == []
    assert_one_line_error(lwz("models", "add", "m", "--backend", "local", db=read_only), "readonly database")


def test_empty_db_url_is_refused(tmp_path):
    """``--db ""`` used to fall back to ./lwz.db silently."""
    env = {k: v for k, v in os.environ.items() if k != "LWZ_DATABASE_URL"}
    done = subprocess.run([str(LWZ), "--db", "", "models", "list"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=env)
    assert_one_line_error(done, "the database URL is empty")
    assert not (tmp_path / "lwz.db").exists()


def test_missing_sqlite_folder_is_refused_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'typo' / 'deeper' / 'lwz.db'}"
    assert_one_line_error(lwz("db", "upgrade", db=url), "does not exist: create it first")
    assert not (tmp_path / "typo").exists()


def test_closed_pipe_is_no_traceback(sqlite_url):
    """``lwz prompts list | head``: the reader left before the rows were written."""
    assert lwz("prompts", "import", str(LONGBENCH), db=sqlite_url).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before lwz writes a byte
    try:
        env = {k: v for k, v in os.environ.items() if k != "LWZ_DATABASE_URL"}
        done = subprocess.run([str(LWZ), "--db", sqlite_url, "prompts", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120, env=env)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


@pytest.mark.postgres
def test_nul_byte_in_a_prompt_on_postgresql_is_one_line(pg_url, tmp_path):
    """PostgreSQL refuses NUL in text; the CLI used to print the INSERT with its parameters."""
    assert lwz("db", "upgrade", db=pg_url).returncode == 0
    bad = tmp_path / "nul.jsonl"
    bad.write_text(json.dumps({"prompt": "Write about a\u0000b.", "length": 100}) + "\n", encoding="utf-8")
    done = lwz("prompts", "import", str(bad), db=pg_url)
    assert_one_line_error(done, "NUL")
    assert "INSERT" not in done.stderr and "[SQL" not in done.stderr


def test_the_printed_arena_command_after_register_is_a_valid_lwz_command():
    import shlex

    from lwz_cli.common import arena_fill_command
    from lwz_cli.main import build_parser

    line = arena_fill_command("smollm2-dpo", "smollm2-135m", db="sqlite:///runs dir/lwz.db")
    argv = shlex.split(line)
    assert argv[0] == "lwz"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.db, args.models, args.all) == ("battles", "sqlite:///runs dir/lwz.db",
                                                              "smollm2-135m,smollm2-dpo", True)


def test_the_readme_tour_is_valid_lwz_commands_on_files_in_the_repository():
    """Every ``lwz`` line of the README's tour parses, and every file it reads is in the clone."""
    import re
    import shlex

    from lwz_cli.main import build_parser

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    tour = readme.split("## A tour", 1)[1].split("\n## ", 1)[0]
    lines = [line.split("#", 1)[0].strip().rstrip("&").strip() for line in tour.splitlines()]
    commands = [shlex.split(line) for line in lines if line.startswith("lwz ")]
    assert len(commands) >= 10
    for argv in commands:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"not a valid command: {' '.join(argv)}")
        for arg in argv:
            if re.search(r"\.(jsonl|csv|json)$", arg) and "/" in arg:
                inside = (REPO_ROOT / arg).resolve().is_relative_to(REPO_ROOT.resolve())
                assert inside and (REPO_ROOT / arg).is_file(), f"the tour reads {arg}, which a clone does not have"
