"""``lwz export prompts --ranges-from URL``: a served model predicts each prompt's range under the
paper's rules; answers that break them are rejected with the reason; accepted ranges are stored."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from storage.catalog import get_or_add_prompt
from storage.engine import make_engine, session_scope
from tests.helpers import ScriptedOpenAIServer
from training.range_model import parse_range
from training.ranges import paper_range_problem


@pytest.mark.parametrize("low, high, explicit, problem", [
    (800, 1200, None, None),
    (0, 0, None, None),
    (0, 0, 1000, None),
    (900, 1100, 1000, None),
    (1300, 1800, 1550, None),
    (750, 850, None, "not in multiples of 100"),
    (11000, 12100, None, "past 12,000 words"),
    (1000, 4100, None, "3,100 words wide, more than 3,000"),
    (1200, 1200, None, "empty or inverted"),
    (1500, 1000, None, "empty or inverted"),
    (1000, 2000, 1500, r"strays from the requested 1,500 words by more than 10% \(allowed within \[1300, 1700\]\)"),
    (800, 1100, 1000, "strays from the requested 1,000 words"),
])
def test_the_papers_range_rules(low, high, explicit, problem):
    found = paper_range_problem(low, high, explicit=explicit)
    if problem is None:
        assert found is None
    else:
        assert found is not None and re.search(problem, found), found


def test_the_last_pair_after_the_thinking_is_the_answer():
    assert parse_range("<think>maybe [100, 200]?</think> The range is [800, 1200].") == (800, 1200)
    assert parse_range("first [100, 200] then [300, 500]") == (300, 500)
    with pytest.raises(ValueError, match="no \\[low, high\\] pair"):
        parse_range("<think>[100, 200]</think> about a thousand words")


REPLIES = {  # request -> the scripted model's answer
    "Write a 1000-word essay on tides.": "<think>An essay of 1000 words.</think>\n[900, 1100]",
    "Write a story of 1500 words.": "[1000, 2000]",  # breaks the ±10% rule
    "Describe every star in the sky.": "[0, 0]",  # cannot be met: kept, training leaves it out
    "Write a long report on ports.": "Something like [100, 5000]",  # too wide
    "Write a poem about rain.": "a short one",  # no pair
    "Write a letter to a friend.": "[300, 600]",
}


def _seed(url: str) -> None:
    engine = make_engine(url)
    from storage.engine import upgrade

    upgrade(engine)
    targets = {"Write a 1000-word essay on tides.": 1000, "Write a story of 1500 words.": 1500}
    with session_scope(engine) as session:
        for text in REPLIES:
            get_or_add_prompt(session, text=text, target_words=targets.get(text))
    engine.dispose()


def _reply(body: dict) -> str:
    asked = body["messages"][-1]["content"]
    request = asked.rsplit("Request:\n", 1)[1]
    return REPLIES[request]


def _served(model: str = "scripted") -> ScriptedOpenAIServer:
    """The range model: a scripted server answering each request with its ``_reply``."""
    return ScriptedOpenAIServer(lambda body: [_reply(body)], finish="stop", model=model)


def test_export_prompts_asks_checks_and_stores_each_range(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main

    _seed(sqlite_url)
    out = tmp_path / "prompts.parquet"
    with _served(model="judge") as server:
        base_url, bodies = server.base_url, server.bodies
        code = main(["--db", sqlite_url, "export", "prompts", "--ranges-from", base_url, "--range-model", "judge",
                     "--out", str(out), "--json"])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    assert len(bodies) == 6 and all(b["model"] == "judge" and b["temperature"] == 0.0 for b in bodies)
    assert "multiples of 100" in bodies[0]["messages"][0]["content"]
    assert result["range_asked"] == 6 and result["range_accepted"] == 3 and result["dropped_range_rejected"] == 3
    assert result["range_unmeetable"] == 1
    reasons = result["rows_range_rejected"]
    assert "row 2: [1000, 2000] strays from the requested 1,500 words" in reasons
    assert "row 4: [100, 5000] is 4,900 words wide" in reasons and "row 5: no [low, high] pair" in reasons
    frame = pd.read_parquet(out)
    stored = {row["prompt"][0]["content"]: (row["min_words"], row["max_words"], row["target_words"], row["range_source"])
              for row in frame.to_dict("records")}
    assert stored == {"Write a 1000-word essay on tides.": (900, 1100, 1000, "model judge"),
                      "Describe every star in the sky.": (0, 0, 0, "model judge"),
                      "Write a letter to a friend.": (300, 600, 450, "model judge")}


def test_export_prompts_prints_why_ranges_were_rejected(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main

    _seed(sqlite_url)
    with _served() as server:
        base_url = server.base_url
        assert main(["--db", sqlite_url, "export", "prompts", "--ranges-from", base_url, "--range-model", "scripted",
                     "--out", str(tmp_path / "p.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "wrote 3 prompts" in out and "left out: range_rejected=3" in out
    assert "range rejected: row 2: [1000, 2000] strays" in out


def test_a_dead_range_server_is_one_line_and_writes_nothing(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main

    _seed(sqlite_url)
    with _served() as server:
        base_url = server.base_url  # stopped on leaving: nothing listens there now
    code = main(["--db", sqlite_url, "export", "prompts", "--ranges-from", base_url, "--range-model", "judge",
                 "--out", str(tmp_path / "p.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "the range model 'judge' did not answer" in err, err
    assert not (tmp_path / "p.parquet").exists()
    assert main(["--db", sqlite_url, "export", "prompts", "--ranges-from", base_url, "--out", str(tmp_path / "q")]) == 2
    assert "go together" in capsys.readouterr().err
