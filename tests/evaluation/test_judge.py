"""LLM-as-judge: verdict parsing and bookkeeping by hand, then a whole run against the real vLLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from evaluation.judge import (
    DEFAULT_JUDGE_PROMPT, JudgeReport, JudgeSettings, battles_from_verdicts, load_judge_prompt, parse_verdict,
    render_judge_prompt,
)
from evaluation.ratings import compute_ratings
from lwz_cli.main import main
from storage.catalog import add_model
from storage.engine import session_scope
from core.errors import UserError
from storage.models import Generation
from tests.helpers import add_writer_and_judge


def test_parse_verdict():
    assert parse_verdict("Response 1 is clearer.\n[[1]]") == "1"
    assert parse_verdict("[[1]] at first, but on reflection [[ 2 ]]") == "2"  # the last mark counts
    assert parse_verdict("They are equal. [[TIE]]") == "tie"
    assert parse_verdict("Response 1 is better.") is None
    assert parse_verdict("") is None


def test_judge_prompt_file(tmp_path):
    template = load_judge_prompt(None)
    assert template == DEFAULT_JUDGE_PROMPT.read_text(encoding="utf-8")
    filled = render_judge_prompt(template, prompt="Write {x}", answer_1="one {answer_2}", answer_2="two")
    assert "Write {x}" in filled and "one {answer_2}" in filled and "[Response 2]\ntwo" in filled
    custom = tmp_path / "judge.md"
    custom.write_text("Which is better for {prompt}? 1: {answer_1}")
    with pytest.raises(UserError, match=r"lacks the placeholder\(s\) \{answer_2\}"):
        load_judge_prompt(str(custom))
    with pytest.raises(UserError, match="no such judge prompt file"):
        load_judge_prompt(str(tmp_path / "missing.md"))


def test_settings_are_checked():
    with pytest.raises(UserError, match="cannot also be a baseline"):
        JudgeSettings(candidate="a", baselines=["a", "b"], judge="j", prompts="p")
    with pytest.raises(UserError, match="at least one"):
        JudgeSettings(candidate="a", baselines=[], judge="j", prompts="p")


def test_win_rates_and_battles_from_hand_made_verdicts():
    def v(i, first, second, verdict):
        winner = {"1": first, "2": second, "tie": "tie"}.get(verdict) if verdict else None
        return {"prompt_index": i, "baseline": "base", "first": first, "second": second, "verdict": verdict, "winner": winner}

    verdicts = [v(0, "cand", "base", "1"), v(0, "base", "cand", "2"),  # cand wins both orders
                v(1, "cand", "base", "1"), v(1, "base", "cand", "1"),  # position bias: first wins twice
                v(2, "cand", "base", "tie"), v(2, "base", "cand", None)]  # a tie and an invalid reply
    frame = battles_from_verdicts(verdicts)
    assert len(frame) == 5 and frame["winner"].tolist() == ["model_a", "model_b", "model_a", "model_a", "tie"]
    settings = JudgeSettings(candidate="cand", baselines=["base"], judge="j", prompts="p")
    report = JudgeReport(settings=settings, verdicts=verdicts, ratings=compute_ratings(frame, bootstrap=0))
    (row,) = report.win_rates()
    assert (row["candidate_wins"], row["baseline_wins"], row["ties"], row["invalid"]) == (3, 1, 1, 1)
    assert row["win_rate"] == pytest.approx(3.5 / 5)
    assert row["order_consistency"] == pytest.approx(1 / 2)  # prompts 0 and 1 have two valid orders; 0 agrees


@pytest.mark.slow
def test_judge_run_against_the_real_vllm_server(sqlite_engine, vllm_server, tmp_path, capsys):
    with session_scope(sqlite_engine) as session:
        for name, template in (("cand", "direct"), ("base", "direct"), ("judge", "direct")):
            add_model(session, name=name, backend="openai", base_url=vllm_server.base_url,
                      model_id=vllm_server.model, template=template)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(p) for p in (
        {"prompt": "Write a short note about rain.", "type": "note", "length": 20},
        {"prompt": "Describe a red kite in the sky.", "type": "description", "length": 20},
    )) + "\n")
    out = tmp_path / "verdicts.jsonl"
    url = sqlite_engine.url.render_as_string(hide_password=False)
    code = main(["--db", url, "eval", "judge", "--candidate", "cand", "--baselines", "base", "--judge", "judge",
                 "--prompts", str(prompts), "--limit", "1", "--max-tokens", "24", "--judge-max-tokens", "16", "--bootstrap", "20",
                 "--seed", "7", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    (row,) = summary["win_rates"]
    assert row["baseline"] == "base" and row["battles"] == 2  # 1 prompt (--limit) x 2 orders
    assert row["candidate_wins"] + row["baseline_wins"] + row["ties"] + row["invalid"] == 2
    assert {r["model"] for r in summary["ratings"]} == {"cand", "base"}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and all(line["reply"].strip() for line in lines)
    orders = {(line["prompt_index"], line["first"], line["second"]) for line in lines}
    assert orders == {(0, "cand", "base"), (0, "base", "cand")}
    for line in lines:
        assert line["verdict"] in ("1", "2", "tie", None)
        if line["verdict"] is None:
            assert line["winner"] is None
    # The written answers are kept as generation rows.
    with session_scope(sqlite_engine) as session:
        rows = session.execute(sa.select(Generation.id, Generation.status, Generation.answer)).all()
    ids = summary["generation_ids"]
    assert sorted(ids) == ["base", "cand"] and len(ids["cand"]) == 1
    assert {r[0] for r in rows} == set(ids["cand"] + ids["base"])
    assert all(r[1] in ("complete", "truncated") and r[2].strip() for r in rows)
    # An unknown judge is a one-line error, before anything is written.
    assert main(["--db", url, "eval", "judge", "--candidate", "cand", "--baselines", "base", "--judge", "nobody",
                 "--prompts", str(prompts)]) == 2
    assert "no model named 'nobody'" in capsys.readouterr().err


# --- Arena-Write's layout --------------------------------------------------------------------

ARENA_WRITE_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "arena_write_sample.json"


def test_arena_write_file_is_read_and_checked(tmp_path):
    from evaluation.arena_write import is_arena_write, read_arena_write

    assert is_arena_write(str(ARENA_WRITE_SAMPLE))
    rows = read_arena_write(str(ARENA_WRITE_SAMPLE))
    assert [r["idx"] for r in rows] == [0, 1, 2] and rows[1]["target_words"] == 80
    assert rows[2]["category"] == "Education" and rows[0]["baseline"].startswith("Dear Mrs. Patel")
    lines = tmp_path / "aw.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in json.loads(ARENA_WRITE_SAMPLE.read_text())) + "\n")
    assert is_arena_write(str(lines)) and len(read_arena_write(str(lines), limit=2)) == 2
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"prompt": "Write.", "length": 10}) + "\n")
    assert not is_arena_write(str(plain))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"idx": 0, "question": "q", "type": "t", "length": 10, "baseline_response": "a"},
                               {"idx": 1, "question": "q2", "type": "t", "baseline_response": "b"}]))
    with pytest.raises(UserError, match=r"record 2: lacks the field\(s\) length \(Arena-Write has idx, question"):
        read_arena_write(str(bad))
    bad.write_text(json.dumps([{"idx": 0, "question": "q", "type": "t", "length": 10, "baseline_response": "a"},
                               {"idx": 0, "question": "q2", "type": "t", "length": 10, "baseline_response": "b"}]))
    with pytest.raises(UserError, match="idx 0 appears twice"):
        read_arena_write(str(bad))
    with pytest.raises(UserError, match="carries its one baseline"):
        JudgeSettings(candidate="c", baselines=["x", "y"], judge="j", prompts="p", arena_write=True)


def _marking_judge(body: dict):
    """A judge that reads the request and prefers the first response, as a reply ending in its mark."""
    assert "[Response 1]" in body["messages"][-1]["content"]
    yield "Response 1 answers the request more fully. "
    yield "[[1]]"


@pytest.mark.slow
@pytest.mark.parametrize("scripted_judge", [_marking_judge], indirect=True)
def test_arena_write_judge_against_the_real_vllm_server(sqlite_engine, vllm_server, scripted_judge, tmp_path, capsys):
    """The candidate writes through the real vLLM server; the judge is scripted and every reply of
    it carries a verdict, so a run that loses them, or rates nothing, fails here."""
    add_writer_and_judge(sqlite_engine, writer="cand", vllm_server=vllm_server, judge=scripted_judge)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    out = tmp_path / "verdicts.jsonl"
    base = ["--db", url, "eval", "judge", "--candidate", "cand", "--judge", "judge", "--prompts", str(ARENA_WRITE_SAMPLE)]
    code = main(base + ["--limit", "2", "--max-tokens", "24", "--judge-max-tokens", "16", "--bootstrap", "20",
                        "--min-battles", "1", "--seed", "3", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["format"] == "arena-write" and summary["baselines"] == ["arena-write-baseline"]
    (row,) = summary["win_rates"]
    assert row["battles"] == 4 and row["invalid"] == 0  # 2 requests x 2 orders, every verdict read
    assert row["candidate_wins"] == row["baseline_wins"] == 2  # the first response won each time
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(v["idx"], v["first"], v["second"]) for v in lines} == {
        (i, a, b) for i in (0, 1) for a, b in (("cand", "arena-write-baseline"), ("arena-write-baseline", "cand"))}
    ratings = {r["model"]: r for r in summary["ratings"]}
    assert all(v["verdict"] is not None for v in lines)
    # The baseline is the anchor: 1000, and the candidate's rating is its gap to it.
    assert ratings["arena-write-baseline"]["rating"] == pytest.approx(1000.0)
    assert ratings["cand"]["ci_low"] <= ratings["cand"]["rating"] <= ratings["cand"]["ci_high"]
    # Only the candidate wrote: the baseline's answers come from the file, not from a model.
    with session_scope(sqlite_engine) as session:
        assert session.execute(sa.select(sa.func.count(Generation.id))).scalar_one() == 2
    assert summary["generation_ids"] == {"cand": summary["generation_ids"]["cand"]}
    assert main(base + ["--baselines", "judge"]) == 2
    assert "drop --baselines" in capsys.readouterr().err
