"""Rubric scoring: criteria checks, score parsing and the stored summary by hand; the protocol against real vLLM."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from core.errors import UserError
from evaluation.rubric import (
    check_criteria, mean_interval, parse_criteria, parse_score, read_requests, rubric_table,
)
from lwz_cli.main import main
from storage.engine import session_scope
from storage.models import Rubric, RubricScore
from tests.helpers import add_writer_and_judge
from tests.storage.helpers import seed_arena

SCALE = "1-2: off topic; 3-4: weak; 5-6: adequate; 7-8: good; 9-10: excellent"


def test_criteria_without_a_scale_or_name_are_invalid_and_reported():
    valid, invalid = check_criteria([
        {"name": "Relevance", "description": "Does it answer?", "scale": SCALE},
        {"name": "Style", "description": "Is it vivid?"},
        {"description": "nameless", "scale": SCALE},
        {"name": "Structure", "rubric": {"1-5": "loose", "6-10": "clear"}},
        "not an object",
    ])
    assert [c["name"] for c in valid] == ["Relevance", "Structure"]
    assert valid[1]["scale"] == '{"1-5": "loose", "6-10": "clear"}' and valid[0]["description"] == "Does it answer?"
    assert invalid == ["criterion 2 (Style): no scale", "criterion 3: no name", "criterion 5: not an object"]
    assert check_criteria("Relevance") == ([], ["criteria must be a list, got str"])


def test_scores_and_generated_criteria_are_parsed():
    assert parse_score("Clear and on topic.\nScore: 8") == 8
    assert parse_score("Score: 3 at first... on reflection **Score: 10/10**") == 10
    assert parse_score("I would give it a 7.") is None and parse_score("") is None
    assert parse_score("Score: 0") is None  # outside 1-10
    reply = 'Here you go:\n[{"name": "Tone", "description": "Warm?", "scale": "1: cold, 10: warm"}, {"name": "x"}]\nDone.'
    assert parse_criteria(reply) == [{"name": "Tone", "description": "Warm?", "scale": "1: cold, 10: warm"}]
    assert parse_criteria("[not json] no criteria") == [] and parse_criteria("") == []


def test_mean_interval_is_over_requests():
    mean, low, high = mean_interval([6.0, 7.0, 8.0, 5.0, 9.0], bootstrap=2000, seed=1)
    assert mean == pytest.approx(7.0) and 5.4 < low < mean < high < 8.6
    assert mean_interval([7.0], bootstrap=100, seed=0) == (7.0, None, None)
    assert mean_interval([], bootstrap=100, seed=0) == (None, None, None)


def test_bad_prompt_lines_name_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "Write."}) + "\n" + json.dumps({"prompt": "x", "length": "long"}) + "\n")
    with pytest.raises(UserError, match=r"p.jsonl:2: 'length' must be a positive integer"):
        read_requests(str(path), limit=None)
    with pytest.raises(UserError, match="no such prompts file"):
        read_requests(str(tmp_path / "none.jsonl"), limit=None)


def test_stored_scores_summarise_per_model(sqlite_engine):
    seeded = seed_arena(sqlite_engine, battles=3, annotators=1)
    alpha = seeded.generation_ids[0::2]  # the left side of each battle is alpha
    with session_scope(sqlite_engine) as session:
        for i, (prompt_id, gen_id) in enumerate(zip(seeded.prompt_ids, alpha)):
            rubric = Rubric(prompt_id=prompt_id, criteria=[{"name": "A", "description": "", "scale": SCALE}])
            session.add(rubric)
            session.flush()
            for criterion, score in (("A", 6 + i), ("B", 8 + i), ("C", None)):
                session.add(RubricScore(rubric_id=rubric.id, generation_id=gen_id, judge="j", criterion=criterion,
                                        score=score, justification="because"))
    (row,) = rubric_table(sqlite_engine, bootstrap=500, seed=0)
    assert (row["model"], row["judge"], row["requests"], row["scores"], row["invalid"]) == ("alpha", "j", 3, 6, 3)
    assert row["mean"] == pytest.approx(8.0)  # request means 7, 8, 9
    assert row["ci_low"] >= 7.0 and row["ci_high"] <= 9.0


WRITTEN_CRITERION = {"name": "Clarity", "description": "Is it easy to follow?", "scale": SCALE}


def _scoring_judge(body: dict):
    """A judge that writes one criterion when asked for a rubric and otherwise scores 7, with a reason."""
    if "JSON array" in body["messages"][-1]["content"]:
        yield json.dumps([WRITTEN_CRITERION])
    else:
        yield "It stays on the request throughout.\nScore: 7"


@pytest.mark.slow
@pytest.mark.parametrize("scripted_judge", [_scoring_judge], indirect=True)
def test_rubric_run_against_the_real_vllm_server(sqlite_engine, vllm_server, scripted_judge, tmp_path, capsys):
    """The writer writes through the real vLLM server; the judge is scripted and every reply of it
    is usable, so a run that loses the scores, or stores none, fails here."""
    add_writer_and_judge(sqlite_engine, writer="writer", vllm_server=vllm_server, judge=scripted_judge)
    prompts = tmp_path / "rubric.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in (
        {"prompt": "Write a short note about rain.", "length": 20, "criteria": [
            {"name": "Relevance", "description": "Is it about rain?", "scale": SCALE},
            {"name": "Imagery", "description": "Does it make rain vivid?", "rubric": SCALE},
            {"name": "Broken", "description": "no scale here"}]},
        {"prompt": "Describe a red kite in the sky.", "length": 20},
    )) + "\n")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    argv = ["--db", url, "eval", "rubric", "--model", "writer", "--judge", "judge", "--prompts", str(prompts),
            "--max-tokens", "24", "--judge-max-tokens", "24", "--criteria-max-tokens", "48", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    first, second = result["requests"]
    assert first["invalid_criteria"] == ["criterion 3 (Broken): no scale"]
    assert [(s["criterion"], s["score"]) for s in first["scores"]] == [("Relevance", 7), ("Imagery", 7)]
    assert all(s["justification"] for s in first["scores"])  # the judge's reason is kept with each score
    # The second request had no criteria: the judge wrote them, and they were stored, then scored.
    assert [(s["criterion"], s["score"]) for s in second["scores"]] == [("Clarity", 7)]
    summary = result["summary"]
    assert summary["requests"] == 2 and summary["invalid_criteria"] == 1
    assert (summary["scores"], summary["invalid_scores"]) == (3, 0)
    with session_scope(sqlite_engine) as session:
        stored = session.execute(sa.select(RubricScore.criterion, RubricScore.score)).all()
        rubrics = session.execute(sa.select(Rubric.source, Rubric.criteria)).all()
    assert len(stored) == summary["scores"] + summary["invalid_scores"]
    assert ("file", [{"name": "Relevance", "description": "Is it about rain?", "scale": SCALE},
                     {"name": "Imagery", "description": "Does it make rain vivid?", "scale": SCALE}]) in rubrics
    table = rubric_table(sqlite_engine)
    assert table[0]["model"] == "writer" and table[0]["scores"] == summary["scores"]
    # The criteria are stored once: a second run reuses them (no new rubric rows).
    assert main(argv[:-1] + ["--limit", "1"]) == 0
    with session_scope(sqlite_engine) as session:
        assert session.execute(sa.select(sa.func.count(Rubric.id))).scalar_one() == len(rubrics)
    assert main(["--db", url, "eval", "rubric", "--model", "nobody", "--judge", "judge", "--prompts", str(prompts)]) == 2
