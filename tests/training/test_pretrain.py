"""Continual pretraining (``lwz train pretrain``): plain text streamed from disk, mixed by ratio, packed
into max_length sequences.

The slow test trains the bundled model for real, one step, then resumes from that checkpoint to the
end of the text and registers: the tokens seen over both runs must be every token of the text,
counted here with the tokenizer on its own. The other tests check that each bad input is one line,
before any model loads or any run is recorded, that the corpus is streamed (memory does not grow with
it) and that mixed sources are drawn by their ratios.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from core.errors import UserError
from storage.catalog import add_model, get_model
from storage.engine import session_scope
from storage.models import TrainingRun
from training.options import TrainOptions
from training.runner import run_training

STORY = ("The keeper of the north light wrote in his log every evening. The sea was grey, then green, then "
         "black. A ship passed far out, its lamps like a low constellation, and he noted the hour and the wind. ")
LETTERS = ["Dear Anna, the harbour froze last night and the boats stood still like furniture in a cold room.",
           "Dear Tomas, the bridge is open again; the market sells oranges, and nobody speaks of the winter."]


def _texts(folder: Path) -> tuple[str, str]:
    """A .txt document (one file, one document) and a parquet file with two texts and a blank row."""
    story = folder / "keeper.txt"
    story.write_text(STORY * 2, encoding="utf-8")
    letters = folder / "letters.parquet"
    pd.DataFrame({"text": LETTERS + ["   "], "author": ["a", "b", "c"]}).to_parquet(letters)
    return str(story), str(letters)


@pytest.mark.slow
def test_pretrain_counts_every_token_across_resume_and_registers(sqlite_engine, tmp_path, capsys):
    from transformers import AutoTokenizer

    from generation.bundled import ensure_bundled_model

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
    texts = _texts(tmp_path)
    out = str(tmp_path / "pt")
    tokenizer = AutoTokenizer.from_pretrained(str(ensure_bundled_model()))
    # Each document and its EOS: the tokens a full epoch has to see, packed or not.
    expected = sum(len(tokenizer(text)["input_ids"]) + 1 for text in [STORY * 2] + LETTERS)
    steps = math.ceil(math.ceil(expected / 64) / 2)  # every packed sequence once, two per step
    settings = {"kind": "pretrain", "base": "smollm2-135m", "texts": texts, "out": out, "max_length": 64,
                "batch_size": 2, "save_steps": 1}
    first = run_training(sqlite_engine, TrainOptions(**settings, max_steps=1), log=lambda line: None)
    assert first["metrics"]["steps"] == 1 and (tmp_path / "pt" / "checkpoint-1").is_dir()
    assert 0 < first["metrics"]["tokens"]["seen"] <= 2 * 64
    lines: list[str] = []
    second = run_training(sqlite_engine, TrainOptions(**settings, max_steps=steps, resume=True, register="smollm2-pt"),
                          log=lines.append)
    tokens, lengths = second["metrics"]["tokens"], second["metrics"]["lengths"]
    assert lengths == {"documents": 3, "max_length": 64, "streamed": True}, lengths
    assert tokens["seen"] == expected, "the two runs together saw the text once"
    assert tokens["this_run"] == expected - first["metrics"]["tokens"]["seen"]
    assert second["metrics"]["data"]["dropped_empty"] == 1
    assert second["metrics"]["steps"] == steps
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[lwz train] step ")]
    assert progress and all("num_input_tokens_seen=" in line for line in progress), progress
    assert f"[lwz train] {expected} tokens seen ({tokens['this_run']} in this run)" in lines, lines
    assert any("resuming from" in line and line.endswith("checkpoint-1") for line in lines), lines
    assert math.isfinite(second["metrics"]["final"]["train_loss"])
    with session_scope(sqlite_engine) as session:
        run = session.get(TrainingRun, second["run_id"])
        child, parent = get_model(session, name="smollm2-pt"), get_model(session, name="smollm2-135m")
        assert run.kind == "pretrain" and run.status == "complete" and run.metrics["tokens"]["seen"] == expected
        assert run.config["texts"] == list(texts) and run.config["resumed_from"].endswith("checkpoint-1")
        assert run.last_saved_step == second["metrics"]["steps"]
        assert run.metrics["gate"]["ran"] is False and "no reward" in run.metrics["gate"]["reason"]
        assert run.model_id == child.id and child.parent_id == parent.id and child.template == "direct"
        assert Path(child.path) == Path(out).resolve() and (Path(child.path) / "model.safetensors").is_file()


def _write(folder: Path, name: str, content) -> str:
    path = folder / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path) if name.endswith(".parquet") else content.to_json(path, orient="records", lines=True)
    else:
        path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize("files, overrides, message", [
    ([], {}, "no such text file: .*missing.txt"),
    ([("empty.txt", b"")], {}, "empty.txt is empty"),
    ([("blank.md", b" \n\n ")], {}, "blank.md holds only whitespace"),
    ([("latin.txt", "café".encode("latin-1"))], {}, "latin.txt is not UTF-8 text"),
    ([("notes.jsonl", pd.DataFrame({"body": ["a text"]}))], {}, r"no 'text' column \(columns: body\).*--text-column"),
    ([("notes.parquet", pd.DataFrame({"text": ["a text"]}))], {"text_column": "body"}, "no 'body' column"),
    ([("blank.jsonl", pd.DataFrame({"text": ["", "  "]}))], {}, "every row's 'text' is empty"),
    ([("numbers.jsonl", pd.DataFrame({"text": ["a text", 7]}))], {}, "row 2: the 'text' column holds int"),
    ([("table.csv", b"text\nhello\n")], {}, "pretrain reads .txt/.md files"),
    ([("a.txt", b"hello"), ("a.txt", b"hello")], {}, "a.txt is given twice"),
    ([("a.txt", b"hello")], {"max_length": 9000}, r"--max-length 9000 is longer than the model's context \(8192 tokens"),
    ([("a.txt", b"hello")], {"config": {"max_length": 9000}}, r"max_length: 9000 in the config is longer .*8192"),
    ([("a.txt", b"hello")], {"config": {"packing_strategy": "bfd"}}, "'bfd' would cut each document"),
    ([("a.txt", b"hello")], {"config": {"packing": False}}, "pretrain fixes packing: True"),
    ([("a.txt", b"hello")], {"register": "x", "force": True}, "gate, which pretrain runs do not pass through"),
    ([("a.txt", b"hello")], {"data": "p.parquet"}, "not an export dataset"),
    ([("a.txt", b"hello")], {"max_steps": None}, "streams its corpus from disk.*give --max-steps N"),
    ([("a.txt", b"hello")], {"mix": ("b.txt=1.5",)}, "--mix takes FILE=RATIO with a ratio between 0 and 1"),
    ([("a.txt", b"hello")], {"mix": ("nope.jsonl=0.01",)}, "--mix: no such text file: nope.jsonl"),
])
def test_bad_input_is_refused_before_a_model_loads(sqlite_engine, tmp_path, files, overrides, message):
    texts = [_write(tmp_path, name, content) for name, content in files] or [str(tmp_path / "missing.txt")]
    options = TrainOptions(kind="pretrain", base="smollm2-135m", texts=tuple(texts), out=str(tmp_path / "out"),
                           **{"max_steps": 2, **overrides})
    with pytest.raises(UserError, match=message):
        run_training(sqlite_engine, options, log=lambda line: None)
    with session_scope(sqlite_engine) as session:
        assert list(session.exec(select(TrainingRun))) == []
    assert not (tmp_path / "out").exists()


def test_texts_are_for_pretrain_only(tmp_path):
    with pytest.raises(UserError, match="texts .plain text files. are for pretrain"):
        TrainOptions(kind="dpo", base="m", out=str(tmp_path / "o"), texts=("a.txt",)).check()


def test_cli_takes_several_files_and_refuses_bad_ones_in_one_line(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import build_parser, main
    from lwz_cli.train import options_from_args

    names = [_write(tmp_path, f"{n}.txt", b"some text") for n in "abc"]
    args = build_parser().parse_args(["train", "pretrain", "--base", "smollm2-135m", "--out", str(tmp_path / "o"),
                                      "--data", f"{names[0]},{names[1]}", names[2], "--max-length", "128", "--max-steps", "2"])
    options = options_from_args(args)
    assert options.texts == tuple(names) and options.max_length == 128 and options.filters is None
    options.check()
    code = main(["--db", sqlite_url, "train", "pretrain", "--base", "smollm2-135m", "--out", str(tmp_path / "o"),
                 "--data", names[0], str(tmp_path / "nope.md")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such text file" in err and "nope.md" in err, err


def _jsonl(path: Path, rows: int, *, tag: str, words: int = 200) -> str:
    with path.open("w", encoding="utf-8") as handle:
        for i in range(rows):
            handle.write(json.dumps({"text": f"{tag} {i} " + "word " * words}) + "\n")
    return str(path)


def test_the_corpus_is_streamed_not_read_whole(tmp_path):
    """Checking a 20 MB corpus and reading its first documents allocates a few documents' worth, not the corpus."""
    import tracemalloc

    from training.corpus import load_texts

    corpus = _jsonl(tmp_path / "corpus.jsonl", 20_000, tag="doc", words=200)  # about 20 MB
    options = TrainOptions(kind="pretrain", base="m", out=str(tmp_path / "o"), texts=(corpus,), max_steps=1)
    tracemalloc.start()
    dataset, _, report = load_texts(options, None, template="none", api="chat")
    first = [row["text"] for _, row in zip(range(5), dataset)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert report["documents"] == 20_000 and report["characters"] > 20_000_000
    assert first[0].startswith("doc 0 ") and first[4].startswith("doc 4 ")
    assert peak < 4_000_000, peak  # the whole file would be over 20 MB as text alone


def test_sources_are_mixed_by_ratio(tmp_path):
    from training.corpus import load_texts

    corpus = _jsonl(tmp_path / "corpus.jsonl", 900, tag="book", words=3)
    cot = _jsonl(tmp_path / "cot.jsonl", 5, tag="cot", words=3)
    options = TrainOptions(kind="pretrain", base="m", out=str(tmp_path / "o"), texts=(corpus,), mix=(f"{cot}=0.1",),
                           max_steps=1, seed=3)
    dataset, fingerprint, report = load_texts(options, None, template="none", api="chat")
    drawn = [row["text"].split()[0] for row in dataset]
    books, cots = drawn.count("book"), drawn.count("cot")
    assert books == 900, "every corpus document is read once"
    assert 0.06 < cots / len(drawn) < 0.14, (cots, len(drawn))  # the small source repeats to keep its share
    assert report["mix"][cot] == {"ratio": 0.1, "documents": 5, "dropped_empty": 0, "characters": report["mix"][cot]["characters"]}
    alone, alone_fingerprint, _ = load_texts(TrainOptions(kind="pretrain", base="m", out=str(tmp_path / "o"), texts=(corpus,),
                                          max_steps=1), None, template="none", api="chat")
    assert fingerprint != alone_fingerprint and sum(1 for _ in alone) == 900
