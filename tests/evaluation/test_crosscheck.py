"""Agreement per checkpoint: humans vs judge vs reward model, by hand, from the database, and a judge on real vLLM."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from evaluation.crosscheck import agreement_from_db, agreement_rows, human_verdicts, stored_verdicts, wilson
from lwz_cli.main import main
from storage.catalog import add_model
from storage.engine import session_scope
from storage.models import JudgeVerdict
from tests.helpers import cast
from tests.storage.helpers import seed_arena


def test_wilson_interval():
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (None, None)
    low, high = wilson(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73


def test_agreement_rows_by_hand():
    signals = {
        "humans": {1: "left", 2: "right", 3: "tie", 4: "left"},
        "judge:j": {1: "left", 2: "left", 3: "left", 4: "left"},
        "rm:r": {1: "left", 2: "right", 4: "right"},
    }
    models_of = {1: ("a", "b"), 2: ("a", "c"), 3: ("b", "c"), 4: ("b", "c")}
    rows = {(r["model"], r["pair"]): r for r in agreement_rows(signals, models_of, ["a", "b", "c", "d"])}
    everyone = rows[("(all)", "humans ~ judge:j")]
    assert (everyone["battles"], everyone["agreement"]) == (3, round(2 / 3, 4))  # battle 3 is a human tie
    assert rows[("(all)", "humans ~ rm:r")]["agreement"] == round(2 / 3, 4)
    assert rows[("(all)", "judge:j ~ rm:r")]["agreement"] == round(1 / 3, 4)
    assert (rows[("a", "humans ~ judge:j")]["battles"], rows[("a", "humans ~ judge:j")]["agreement"]) == (2, 0.5)
    assert rows[("c", "humans ~ rm:r")]["battles"] == 2 and rows[("c", "humans ~ rm:r")]["agreement"] == 0.5
    assert not any(model == "d" for model, _ in rows)  # never fought: no rows
    low, high = everyone["ci_low"], everyone["ci_high"]
    assert low < everyone["agreement"] < high


def test_agreement_from_the_database(sqlite_engine, capsys):
    seeded = seed_arena(sqlite_engine, battles=4, annotators=3)
    b = seeded.battle_ids
    with session_scope(sqlite_engine) as session:
        votes = [["left", "left", "right", "tie"], ["left", "right", "right", "both_bad"], ["right", "left", "left", "tie"]]
        for annotator, winners in zip(seeded.annotator_ids, votes):
            for battle_id, winner in zip(b, winners):
                cast(session, battle_id=battle_id, annotator_id=annotator, winner=winner)
        for battle_id, first, second in ((b[0], "left", "left"), (b[1], "left", "right"), (b[2], None, "right")):
            session.add(JudgeVerdict(battle_id=battle_id, judge="j", left_first=True, verdict=first))
            session.add(JudgeVerdict(battle_id=battle_id, judge="j", left_first=False, verdict=second))
        session.add(JudgeVerdict(battle_id=b[3], judge="rm:r", left_first=True, verdict="left",
                                 reply=json.dumps({"left": 1.0, "right": 0.5})))
    with session_scope(sqlite_engine) as session:
        assert human_verdicts(session) == {b[0]: "left", b[1]: "left", b[2]: "right", b[3]: "tie"}  # both_bad = tie
        # b[1] is position-inconsistent (a tie); b[2] has one valid order
        assert stored_verdicts(session)["j"] == {b[0]: "left", b[1]: "tie", b[2]: "right"}
    rows = {(r["model"], r["pair"]): r for r in agreement_from_db(sqlite_engine)}
    assert rows[("alpha", "humans ~ j")]["battles"] == 2 and rows[("alpha", "humans ~ j")]["agreement"] == 1.0
    assert rows[("(all)", "humans ~ rm:r")]["battles"] == 0  # the only scored battle is a human tie
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "eval", "agreement", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == agreement_from_db(sqlite_engine)
    assert main(["--db", url, "eval", "agreement", "--reward-model", "/nonexistent/rm"]) == 2
    assert "no such reward model folder" in capsys.readouterr().err
    from webapp.leaderboard_tab import leaderboard_view

    view = leaderboard_view(sqlite_engine, bootstrap=0)
    assert "humans ~ j" in set(view["agreement"]["pair"])


@pytest.mark.slow
def test_judge_fills_in_verdicts_on_real_vllm(sqlite_engine, vllm_server, capsys):
    seeded = seed_arena(sqlite_engine, battles=2, annotators=1)
    with session_scope(sqlite_engine) as session:
        add_model(session, name="judge", backend="openai", base_url=vllm_server.base_url, model_id=vllm_server.model,
                  template="direct")
        for battle_id in seeded.battle_ids:
            cast(session, battle_id=battle_id, annotator_id=seeded.annotator_ids[0], winner="left")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    argv = ["--db", url, "eval", "agreement", "--judge", "judge", "--judge-max-tokens", "12", "--json"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["pair"] for r in rows} == {"humans ~ judge"}
    with session_scope(sqlite_engine) as session:
        stored = session.execute(sa.select(JudgeVerdict.battle_id, JudgeVerdict.left_first, JudgeVerdict.verdict,
                                           JudgeVerdict.reply)).all()
    assert sorted((r[0], r[1]) for r in stored) == sorted((bid, o) for bid in seeded.battle_ids for o in (True, False))
    assert all(r[2] in ("left", "right", "tie", None) and r[3] for r in stored)
    assert main(argv) == 0  # nothing left to judge: no new rows
    capsys.readouterr()
    with session_scope(sqlite_engine) as session:
        assert session.execute(sa.select(sa.func.count(JudgeVerdict.id))).scalar_one() == 4


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory):
    """A one-layer sequence-classification model on the bundled model's tokenizer (random weights, seeded):
    the folder layout ``lwz train reward`` writes, small enough to load in a second."""
    from pathlib import Path

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    source = Path.home() / ".cache" / "lwz" / "models" / "smollm2-135m"
    if not source.is_dir():
        pytest.skip("the bundled model is not converted (lwz models prepare)")
    out = tmp_path_factory.mktemp("reward-model")
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.slow
def test_reward_model_scores_the_voted_battles(sqlite_engine, tiny_reward_model, capsys):
    seeded = seed_arena(sqlite_engine, battles=3, annotators=1)
    with session_scope(sqlite_engine) as session:
        for battle_id, winner in zip(seeded.battle_ids, ["left", "right", "left"]):
            cast(session, battle_id=battle_id, annotator_id=seeded.annotator_ids[0], winner=winner)
    url = sqlite_engine.url.render_as_string(hide_password=False)
    argv = ["--db", url, "eval", "agreement", "--reward-model", str(tiny_reward_model), "--json"]
    assert main(argv) == 0
    rows = {(r["model"], r["pair"]): r for r in json.loads(capsys.readouterr().out)}
    name = f"rm:{tiny_reward_model.name}"
    with session_scope(sqlite_engine) as session:
        stored = session.execute(sa.select(JudgeVerdict.battle_id, JudgeVerdict.judge, JudgeVerdict.verdict,
                                           JudgeVerdict.reply)).all()
    assert sorted(r[0] for r in stored) == sorted(seeded.battle_ids) and {r[1] for r in stored} == {name}
    humans = {seeded.battle_ids[0]: "left", seeded.battle_ids[1]: "right", seeded.battle_ids[2]: "left"}
    agree = 0
    for battle_id, _, verdict, reply in stored:
        scores = json.loads(reply)
        assert verdict == ("left" if scores["left"] > scores["right"] else "right")
        agree += verdict == humans[battle_id]
    everyone = rows[("(all)", f"humans ~ {name}")]
    assert everyone["battles"] == 3 and everyone["agreement"] == round(agree / 3, 4)
    assert rows[("alpha", f"humans ~ {name}")]["battles"] == 3
