"""Votes -> preference datasets: majority, agreement, margin, filters, formats and layouts."""

from __future__ import annotations

import json

import pytest

from storage.engine import session_scope
from core.errors import UserError
from tests.training.arena_data import seed_battles, utc
from training.preferences import PreferenceFilters, export_preferences, preference_pairs, shape_rows

VERDICTS = [
    ["left", "left", "right"],      # 1: left wins 2/3
    ["right", "tie", "right"],      # 2: right wins 2/3
    ["tie", "tie"],                 # 3: tie
    ["both_bad", "left", "both_bad"],  # 4: both bad
    ["left", "right"],              # 5: split -> tie
    ["left", "left", "left"],       # 6: unanimous left
]


def test_majority_agreement_and_margin(engine):
    with session_scope(engine) as session:
        ids = seed_battles(session, VERDICTS)
        frame, report = preference_pairs(session, filters=PreferenceFilters())
    assert list(frame["battle_id"]) == [ids[0], ids[1], ids[5]]
    first, second, third = frame.to_dict("records")
    assert first["chosen"] == "<think>plan 0</think>\n<answer>left answer 0</answer>"
    assert first["rejected"] == "right answer 0"
    assert first["agreement"] == pytest.approx(2 / 3) and first["margin"] == pytest.approx(1 / 3)
    assert second["chosen"] == "right answer 1" and second["chosen_model"] == "b"
    assert second["margin"] == pytest.approx(2 / 3), "the tie vote counts in the denominator only"
    assert third["agreement"] == 1.0 and third["margin"] == 1.0 and third["annotators"] == 3
    assert report["dropped_ties"] == 2 and report["dropped_both_bad"] == 1 and report["pairs"] == 3


# Every mix of up to three votes, written out by hand: the verdict, and the KTO labels (left, right).
# Ties never pick a side; the plurality is over decisive votes; both-bad outnumbering every other
# option makes both texts undesirable; anything else without a decisive plurality is no pair.
MIXES = {
    ("left",): ("left", (True, False)), ("right",): ("right", (False, True)),
    ("tie",): ("tie", None), ("both_bad",): ("both_bad", (False, False)),
    ("left", "left"): ("left", (True, False)), ("left", "right"): ("tie", None),
    ("left", "tie"): ("left", (True, False)), ("left", "both_bad"): ("left", (True, False)),
    ("right", "right"): ("right", (False, True)), ("right", "tie"): ("right", (False, True)),
    ("both_bad", "right"): ("right", (False, True)), ("tie", "tie"): ("tie", None),
    ("both_bad", "tie"): ("tie", None), ("both_bad", "both_bad"): ("both_bad", (False, False)),
    ("left", "left", "left"): ("left", (True, False)), ("left", "left", "right"): ("left", (True, False)),
    ("left", "left", "tie"): ("left", (True, False)), ("both_bad", "left", "left"): ("left", (True, False)),
    ("left", "right", "right"): ("right", (False, True)), ("left", "right", "tie"): ("tie", None),
    ("both_bad", "left", "right"): ("tie", None), ("left", "tie", "tie"): ("left", (True, False)),
    ("both_bad", "left", "tie"): ("left", (True, False)), ("both_bad", "both_bad", "left"): ("both_bad", (False, False)),
    ("right", "right", "right"): ("right", (False, True)), ("right", "right", "tie"): ("right", (False, True)),
    ("both_bad", "right", "right"): ("right", (False, True)), ("right", "tie", "tie"): ("right", (False, True)),
    ("both_bad", "right", "tie"): ("right", (False, True)),
    ("both_bad", "both_bad", "right"): ("both_bad", (False, False)),
    ("tie", "tie", "tie"): ("tie", None), ("both_bad", "tie", "tie"): ("tie", None),
    ("both_bad", "both_bad", "tie"): ("both_bad", (False, False)),
    ("both_bad", "both_bad", "both_bad"): ("both_bad", (False, False)),
}


def test_every_mix_of_up_to_three_votes(sqlite_engine):
    import itertools

    mixes = sorted({tuple(sorted(m)) for n in (1, 2, 3)
                    for m in itertools.product(("left", "right", "tie", "both_bad"), repeat=n)})
    table = {tuple(sorted(mix)): outcome for mix, outcome in MIXES.items()}
    assert sorted(table) == mixes and len(MIXES) == len(mixes) == 34, "the table lists every mix exactly once"
    with session_scope(sqlite_engine) as session:
        ids = seed_battles(session, [list(m) for m in mixes])
        pairs, report = preference_pairs(session, filters=PreferenceFilters())
        with_bad, _ = preference_pairs(session, filters=PreferenceFilters(), both_bad=True)
    kto = shape_rows(with_bad, fmt="kto", layout="trl")
    by_battle = pairs.set_index("battle_id")
    for battle_id, mix in zip(ids, mixes):
        verdict, labels = table[mix]
        if verdict in ("left", "right"):
            row = by_battle.loc[battle_id]
            assert row["chosen_model"] == ("a" if verdict == "left" else "b"), mix
            assert row["margin"] > 0, mix
        else:
            assert battle_id not in by_battle.index, f"{mix} must not give a chosen/rejected pair"
        rows = kto[kto["battle_id"] == battle_id]
        got = None if rows.empty else tuple(rows.set_index("model").loc[["a", "b"], "label"])
        assert got == labels, (mix, got)
    assert report["dropped_ties"] == sum(v == "tie" for v, _ in MIXES.values())
    assert report["dropped_both_bad"] == sum(v == "both_bad" for v, _ in MIXES.values())


def test_cli_has_no_tie_margin_option(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main

    with pytest.raises(SystemExit) as info:
        main(["--db", sqlite_url, "export", "preferences", "--out", str(tmp_path / "p.parquet"), "--ties", "margin"])
    assert info.value.code == 2 and "unrecognized arguments: --ties" in capsys.readouterr().err


def test_filters_flagged_votes_annotators_dates_and_agreement(engine):
    with session_scope(engine) as session:
        ids = seed_battles(session, [["left", "right", "right"], ["left", "left"]], flagged_users=(2,))
        # Without annotator 2 (flagged), battle 1 is a 1-1 split: a tie, dropped.
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        assert list(frame["battle_id"]) == [ids[1]]
        frame, _ = preference_pairs(session, filters=PreferenceFilters(include_flagged_annotators=True))
        assert frame.set_index("battle_id").loc[ids[0], "chosen_model"] == "b"
        frame, _ = preference_pairs(session, filters=PreferenceFilters(include_flagged_annotators=True, min_agreement=0.7))
        assert list(frame["battle_id"]) == [ids[1]]
        with pytest.raises(UserError, match="flagged votes excluded.*since "):
            preference_pairs(session, filters=PreferenceFilters(since=utc(days=1)))
        frame, _ = preference_pairs(session, filters=PreferenceFilters(until=utc(days=1), since=utc(days=-1)))
        assert len(frame) == 1


def test_banned_annotators_votes_are_left_out_until_the_ban_is_lifted(engine):
    from evaluation.hygiene import ban, unban

    with session_scope(engine) as session:
        ids = seed_battles(session, [["right", "left", "left"]])
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        assert frame.set_index("battle_id").loc[ids[0], "chosen_model"] == "a"
        ban(session, name="ann1")
        ban(session, name="ann2")
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        row = frame.set_index("battle_id").loc[ids[0]]
        assert row["chosen_model"] == "b" and row["annotators"] == 1
        unban(session, name="ann1")
        unban(session, name="ann2")
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        assert frame.set_index("battle_id").loc[ids[0], "chosen_model"] == "a"


def test_flagged_votes_are_left_out(sqlite_engine):
    from storage.users import add_user
    from tests.helpers import cast

    with session_scope(sqlite_engine) as session:
        ids = seed_battles(session, [["left"]])
        extra = [add_user(session, name=f"x{i}", role="annotator") for i in range(2)]
        for user in extra:
            cast(session, battle_id=ids[0], annotator_id=user.id, winner="right", too_fast=True)
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        assert frame.loc[0, "chosen_model"] == "a"
        frame, _ = preference_pairs(session, filters=PreferenceFilters(include_flagged_votes=True))
        assert frame.loc[0, "chosen_model"] == "b" and frame.loc[0, "annotators"] == 3


def test_empty_dataset_names_the_filters(sqlite_engine):
    with session_scope(sqlite_engine) as session:
        seed_battles(session, [["tie"], ["both_bad"]])
        with pytest.raises(UserError) as info:
            preference_pairs(session, filters=PreferenceFilters(min_agreement=0.9))
    message = str(info.value)
    assert "min agreement 0.9" in message and "ties never paired" in message and "dropped_ties=1" in message


def test_bad_filter_values_are_user_errors():
    with pytest.raises(UserError, match="min-agreement"):
        PreferenceFilters(min_agreement=1.5)
    with pytest.raises(UserError, match="timezone"):
        from datetime import datetime

        PreferenceFilters(since=datetime(2026, 1, 1))
    with pytest.raises(UserError, match="before"):
        PreferenceFilters(since=utc(1), until=utc(0))


def test_kto_and_layouts(sqlite_engine, tmp_path):
    with session_scope(sqlite_engine) as session:
        seed_battles(session, VERDICTS)
        frame, _ = preference_pairs(session, filters=PreferenceFilters(text="answer"))
    assert frame.loc[0, "chosen"] == "left answer 0"
    kto = shape_rows(frame, fmt="kto", layout="trl")
    assert len(kto) == 2 * len(frame) and list(kto["label"][:2]) == [True, False]
    with session_scope(sqlite_engine) as session:
        result = export_preferences(session, out=tmp_path / "k.jsonl", fmt="kto", filters=PreferenceFilters())
    rows = [json.loads(line) for line in (tmp_path / "k.jsonl").read_text().splitlines()]
    undesirable_pairs = [r for r in rows if r["battle_id"] == 4 and not r["label"]]
    assert len(undesirable_pairs) == 2 and result["both_bad"] == 1, "the both-bad battle: two undesirable rows"
    openrlhf = shape_rows(frame, fmt="dpo", layout="openrlhf")
    assert [m["role"] for m in openrlhf.loc[0, "chosen"]] == ["user", "assistant"]
    verl = shape_rows(frame, fmt="dpo", layout="verl")
    assert verl.loc[0, "prompt"][0]["role"] == "user" and isinstance(verl.loc[0, "chosen"], str)
    with pytest.raises(UserError, match="kto has no openrlhf"):
        shape_rows(frame, fmt="kto", layout="openrlhf")


@pytest.mark.parametrize("suffix", ["parquet", "jsonl"])
def test_export_file_loads_with_datasets(sqlite_engine, tmp_path, suffix):
    import datasets

    out = tmp_path / f"prefs.{suffix}"
    with session_scope(sqlite_engine) as session:
        seed_battles(session, VERDICTS)
        result = export_preferences(session, out=out, fmt="dpo", layout="trl", filters=PreferenceFilters())
    loaded = datasets.load_dataset("parquet" if suffix == "parquet" else "json", data_files=str(out), split="train")
    assert len(loaded) == result["rows"] == 3
    assert {"prompt", "chosen", "rejected", "margin", "agreement", "battle_id", "annotators"} <= set(loaded.column_names)
    assert not list(tmp_path.glob("*.partial"))


def test_cli_export_preferences_and_prompts(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main
    from storage.engine import make_engine, upgrade

    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        seed_battles(session, VERDICTS)
    out = tmp_path / "p.parquet"
    assert main(["--db", sqlite_url, "export", "preferences", "--out", str(out), "--format", "reward", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 3 and out.is_file()
    assert main(["--db", sqlite_url, "export", "preferences", "--out", str(tmp_path / "x.csv")]) == 2
    assert "must end in .parquet or .jsonl" in capsys.readouterr().err
    assert main(["--db", sqlite_url, "export", "preferences", "--out", str(tmp_path / "y.parquet"),
                 "--min-agreement", "1.01"]) == 2
    assert not (tmp_path / "y.parquet").exists()
    prompts = tmp_path / "prompts.jsonl"
    assert main(["--db", sqlite_url, "export", "prompts", "--out", str(prompts), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    assert result["rows"] == len(rows) == len(VERDICTS)
    assert rows[0]["min_words"] == 80 and rows[0]["max_words"] == 120 and rows[0]["prompt"][0]["role"] == "user"


def test_export_fingerprint_is_the_file_hash_and_stable(sqlite_engine, tmp_path):
    import hashlib

    with session_scope(sqlite_engine) as session:
        seed_battles(session, VERDICTS)
        first = export_preferences(session, out=tmp_path / "a.parquet", filters=PreferenceFilters())
        second = export_preferences(session, out=tmp_path / "b.parquet", filters=PreferenceFilters())
        frame_a, _ = preference_pairs(session, filters=PreferenceFilters())
        frame_b, _ = preference_pairs(session, filters=PreferenceFilters(min_agreement=0.9))
    assert first["fingerprint"] == hashlib.sha256((tmp_path / "a.parquet").read_bytes()).hexdigest()
    assert first["fingerprint"] == second["fingerprint"]
    assert frame_a.attrs["fingerprint"] != frame_b.attrs["fingerprint"]


def _tally(session, filters: PreferenceFilters) -> tuple[dict, dict]:
    """The pairs and the report, counted vote by vote over ORM objects: the definition the SQL aggregate must match.

    Returns ``({battle_id: (chosen_generation_id, rejected_generation_id, annotators, margin, agreement)}, report)``.
    """
    from collections import Counter

    from sqlmodel import select

    from storage.models import AnnotatorBan, Battle, User, Vote

    banned = {ban.user_id for ban in session.exec(select(AnnotatorBan)) if ban.lifted_at is None}
    flagged_users = {user.id for user in session.exec(select(User)) if user.flagged}
    counts: dict[int, Counter] = {}
    for vote in session.exec(select(Vote)):
        if (vote.annotator_id in banned or (vote.flagged and not filters.include_flagged_votes)
                or (vote.annotator_id in flagged_users and not filters.include_flagged_annotators)
                or (filters.since and vote.created_at < filters.since)
                or (filters.until and vote.created_at >= filters.until)):
            continue
        counts.setdefault(vote.battle_id, Counter())[vote.winner] += 1
    report = dict.fromkeys(["dropped_min_votes", "dropped_both_bad", "dropped_ties", "dropped_min_agreement",
                            "dropped_deleted_generation"], 0)
    pairs = {}
    for battle_id, count in counts.items():
        total = sum(count.values())
        if total < filters.min_votes:
            report["dropped_min_votes"] += 1
        elif count["both_bad"] > max(count["left"], count["right"], count["tie"]):
            report["dropped_both_bad"] += 1
        elif count["left"] == count["right"]:
            report["dropped_ties"] += 1
        else:
            winner, loser = ("left", "right") if count["left"] > count["right"] else ("right", "left")
            battle = session.get(Battle, battle_id)
            sides = {"left": battle.left_generation_id, "right": battle.right_generation_id}
            if count[winner] / total < filters.min_agreement:
                report["dropped_min_agreement"] += 1
            elif None in sides.values():
                report["dropped_deleted_generation"] += 1
            else:
                pairs[battle_id] = (sides[winner], sides[loser], total, (count[winner] - count[loser]) / total,
                                    count[winner] / total)
    return pairs, {"battles_with_valid_votes": len(counts), **report, "pairs": len(pairs)}


def test_pairs_match_a_vote_by_vote_tally(engine):
    """Forty battles of up to five random votes (some flagged, some old, a flagged and a banned annotator,
    a deleted generation): the aggregate in SQL and the tally over ORM rows agree, filter by filter."""
    import random

    import sqlalchemy as sa
    from sqlmodel import select

    from evaluation.hygiene import ban
    from storage.models import Battle, Generation, Vote

    rng = random.Random(17)
    choices = ("left", "right", "tie", "both_bad", None)  # None: that annotator did not vote
    with session_scope(engine) as session:
        # The first battle, unanimous for left, loses its left generation below: a pair left out for that reason.
        ids = seed_battles(session, [["left"] * 5] + [[rng.choice(choices) for _ in range(5)] for _ in range(39)],
                           flagged_users=(1,))
        for vote in session.exec(select(Vote).where(Vote.battle_id != ids[0])).all():
            roll = rng.random()
            if roll < 0.15:
                vote.flagged = True
            elif roll < 0.3:
                vote.created_at = utc(days=-3)
            session.add(vote)
        ban(session, name="ann4")
        deleted = session.get(Battle, ids[0]).left_generation_id
        session.execute(sa.delete(Generation).where(Generation.id == deleted))
        session.flush()
        session.expire_all()
        deleted_counts = []
        for filters in (PreferenceFilters(),
                        PreferenceFilters(include_flagged_votes=True, include_flagged_annotators=True),
                        PreferenceFilters(since=utc(days=-1), text="answer"), PreferenceFilters(until=utc(days=-1)),
                        PreferenceFilters(min_votes=3, min_agreement=0.6)):
            expected, expected_report = _tally(session, filters)
            frame, report = preference_pairs(session, filters=filters)
            assert report == expected_report, filters
            assert ids[0] not in set(frame["battle_id"]), filters
            deleted_counts.append(report["dropped_deleted_generation"])
            got = {row.battle_id: (row.chosen_generation_id, row.rejected_generation_id, row.annotators, row.margin,
                                   row.agreement) for row in frame.itertuples()}
            assert got.keys() == expected.keys(), filters
            for battle_id, (chosen, rejected, annotators, margin, agreement) in expected.items():
                assert got[battle_id][:3] == (chosen, rejected, annotators), (filters, battle_id)
                assert got[battle_id][3:] == (pytest.approx(margin), pytest.approx(agreement)), (filters, battle_id)
            assert list(frame["battle_id"]) == sorted(expected)
            if filters.text == "answer":
                answers = {g.id: g.answer for g in session.exec(select(Generation))}
                assert list(frame["chosen"]) == [answers[g] for g in frame["chosen_generation_id"]]
                assert list(frame["rejected"]) == [answers[g] for g in frame["rejected_generation_id"]]
    assert deleted_counts == [1, 1, 1, 0, 1], "the battle with a deleted side counts once wherever its votes count"


def test_parquet_stores_each_generation_text_once(sqlite_engine, tmp_path):
    """1,500 battles among 150 generations of 8 KB: each text is in the file's dictionary once. Pyarrow's
    default 1 MiB dictionary would be full after the first 1,024 rows and write the rest out in full."""
    import random

    import pandas as pd
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    from storage.catalog import add_model, get_or_add_prompt
    from storage.models import Battle
    from storage.users import add_user
    from storage.votes import bulk_insert_votes
    from tests.training.arena_data import make_generation

    rng = random.Random(3)
    words = [f"w{i}" for i in range(500)]
    out = tmp_path / "p.parquet"
    with session_scope(sqlite_engine) as session:
        model = add_model(session, name="a", backend="local")
        user = add_user(session, name="ann", role="annotator")
        prompt, _ = get_or_add_prompt(session, text="Write at length.", target_words=1500)
        gids = [make_generation(session, prompt_id=prompt.id, model_id=model.id,
                                answer=" ".join(rng.choice(words) for _ in range(1600))) for _ in range(150)]
        sides = [rng.sample(gids, 2) for _ in range(1500)]
        session.execute(sa.insert(Battle), [{"prompt_id": prompt.id, "left_generation_id": left,
                                             "right_generation_id": right, "mode": "pool", "extra": {},
                                             "created_at": utc()} for left, right in sides])
        battle_ids = session.scalars(sa.select(Battle.id).order_by(Battle.id)).all()
        bulk_insert_votes(session, rows=[{"battle_id": b, "annotator_id": user.id,
                                          "winner": rng.choice(("left", "right"))} for b in battle_ids])
        frame, _ = preference_pairs(session, filters=PreferenceFilters())
        result = export_preferences(session, out=out, filters=PreferenceFilters())
    assert result["rows"] == len(frame) == 1500
    meta = pq.ParquetFile(out).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    for column in ("chosen", "rejected"):
        stored = sum(meta.row_group(g).column(names.index(column)).total_uncompressed_size
                     for g in range(meta.num_row_groups))
        distinct = sum(len(text.encode()) for text in frame[column].unique())
        assert distinct > 2**20, "the distinct texts must overflow pyarrow's default dictionary"
        assert stored < distinct + 64_000, f"{column}: {stored} bytes stored for {distinct} bytes of distinct texts"
    pd.testing.assert_frame_equal(pd.read_parquet(out), shape_rows(frame, fmt="dpo", layout="trl"))
