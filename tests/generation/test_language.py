"""Language: a model entry knows which languages it writes; a request in another one is refused
in one line before any token (``generation.language``), from ``lwz generate`` (a real process,
exit 2, no row written) and on the Write page (``tests/webapp/test_write_truth.py``)."""

from __future__ import annotations

import subprocess
import sys

from sqlmodel import select

from generation.language import language_refusal, model_languages, request_language
from storage.catalog import add_model
from storage.engine import make_engine, session_scope, upgrade
from storage.models import Generation, ModelEntry, Prompt

LWZ = [sys.executable, "-m", "lwz_cli.main"]
CHINESE = "写一篇关于灯塔守护人的故事，两千字。"


def lwz(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LWZ, "--db", db_url, *args], capture_output=True, text=True, timeout=600)


def entry(**kw) -> ModelEntry:
    return ModelEntry(**{"name": "m", "backend": "openai", "template": "direct", "sampling": {}, **kw})


def test_languages_of_entries_and_requests():
    assert request_language(CHINESE) == "zh" and request_language("Write about a lighthouse.") == "en"
    assert model_languages(entry(backend="local")) == ("en",)  # the bundled model, recorded or not
    assert model_languages(entry(sampling={"languages": ["zh", "en"]})) == ("zh", "en")
    assert model_languages(entry()) is None  # an unknown model writes any
    assert language_refusal(entry(), CHINESE) is None
    assert language_refusal(entry(backend="local"), "Write about a lighthouse.") is None
    line = language_refusal(entry(backend="local", name="smol"), CHINESE)
    assert line == ("model 'smol' writes English only, and this request is in Chinese (it has Chinese characters): "
                    "pick a model that writes Chinese, or write the request in English")


def rows(db_url: str) -> tuple[int, int]:
    engine = make_engine(db_url)
    with session_scope(engine) as session:
        return len(session.exec(select(Generation)).all()), len(session.exec(select(Prompt)).all())


def test_lwz_generate_refuses_a_chinese_request_for_an_english_model_in_one_line(sqlite_url):
    upgrade(make_engine(sqlite_url))
    assert lwz(sqlite_url, "models", "add", "smol", "--backend", "local", "--template", "direct").returncode == 0
    done = lwz(sqlite_url, "generate", "--model", "smol", "--prompt", CHINESE, "--max-tokens", "8")
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("lwz: error: model 'smol' writes English only") and "--any-language" in line
    assert rows(sqlite_url) == (0, 0)  # nothing half-written: no generation, not even the prompt


def test_any_language_lets_the_writer_insist(sqlite_url):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:  # a server that is not there: the request gets past the language check
        add_model(session, name="en-only", backend="openai", base_url="http://127.0.0.1:9/v1", model_id="x",
                  template="direct", sampling={"api": "chat", "languages": ["en"]})
    refused = lwz(sqlite_url, "generate", "--model", "en-only", "--prompt", CHINESE)
    assert refused.returncode == 2 and "writes English only" in refused.stderr
    insisted = lwz(sqlite_url, "generate", "--model", "en-only", "--prompt", CHINESE, "--any-language")
    assert insisted.returncode == 2 and "writes English only" not in insisted.stderr
    assert "127.0.0.1:9" in insisted.stderr  # it went on to the model server
