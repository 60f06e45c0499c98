"""The reading rules: the page's report is parsed, clamped, stored, and the too-fast flag counts
the words scrolled past (arena/reading.py, arena/rules.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from arena.reading import ReadingReport, clamp_reading, parse_reading, words_read
from arena.rules import too_fast
from arena.seed import seed_pool
from arena.service import ArenaSettings, next_battle, submit_vote
from core.errors import UserError
from storage.engine import session_scope
from storage.models import Assignment, Vote
from storage.users import add_user

WORDS = 2000  # per side: both whole take 240 s at 1,000 words a minute
SETTINGS = ArenaSettings(words_per_minute=1000)


def test_parse_accepts_json_text_dicts_and_nothing():
    assert parse_reading(None) == parse_reading("") == parse_reading("  ") == ReadingReport()
    assert parse_reading('{"read_left": 0.5, "read_right": 1, "active_seconds": 12.5, "extra": "x"}') == \
        ReadingReport(read_left=0.5, read_right=1.0, active_seconds=12.5)
    assert parse_reading({"read_left": 0.25}) == ReadingReport(read_left=0.25)


@pytest.mark.parametrize("value, reason", [
    ("not json", "not valid JSON"),
    ("[0.5, 0.5]", "must be an object"),
    (7, "must be an object"),
    ({"read_left": "0.5"}, "read_left must be a number"),
    ({"read_right": True}, "read_right must be a number"),
    ('{"active_seconds": NaN}', "finite"),
    ('{"read_left": 1e999}', "finite"),
    ("x" * 1001, "too long"),
])
def test_parse_refuses_bad_reports_in_one_line(value, reason):
    with pytest.raises(UserError, match=reason) as caught:
        parse_reading(value)
    assert "\n" not in str(caught.value)


def test_clamp_holds_fractions_to_0_1_and_active_time_to_the_wall_time():
    clamped = clamp_reading(ReadingReport(read_left=7.0, read_right=-0.5, active_seconds=1e9), wall_seconds=90.0)
    assert clamped == ReadingReport(read_left=1.0, read_right=0.0, active_seconds=90.0)
    seen = clamp_reading(ReadingReport(read_left=0.5, seen_left=0.9, seen_right=3.0), wall_seconds=1.0)
    assert (seen.seen_left, seen.seen_right) == (0.5, 1.0)  # nothing seen beyond the deepest point
    assert clamp_reading(ReadingReport(active_seconds=-3.0), wall_seconds=90.0).active_seconds == 0.0
    assert clamp_reading(ReadingReport(read_left=0.33333333), wall_seconds=1.0).read_left == 0.3333
    assert clamp_reading(ReadingReport(), wall_seconds=5.0) == ReadingReport()


def test_words_read_counts_each_side_by_its_share_and_an_unreported_side_whole():
    report = ReadingReport(read_left=0.25, read_right=0.5)
    assert words_read(words_left=1000, words_right=400, report=report) == 450
    assert words_read(words_left=1000, words_right=400, report=ReadingReport(read_left=0.0)) == 400
    assert words_read(words_left=1000, words_right=400, report=ReadingReport()) == 1400
    jumped = ReadingReport(read_left=1.0, seen_left=0.1, read_right=1.0, seen_right=0.5)  # an outline jump to the end
    assert words_read(words_left=1000, words_right=400, report=jumped) == 300


def test_too_fast_rule_on_words_scrolled_past():
    # 60 s at 1,000 words a minute covers 1,000 words.
    assert too_fast(seconds=60, words=1001, words_per_minute=1000)
    assert not too_fast(seconds=60, words=1000, words_per_minute=1000)
    partly = words_read(words_left=WORDS, words_right=WORDS, report=ReadingReport(read_left=0.25, read_right=0.25))
    assert not too_fast(seconds=60, words=partly, words_per_minute=1000)
    whole = words_read(words_left=WORDS, words_right=WORDS, report=ReadingReport())
    assert too_fast(seconds=60, words=whole, words_per_minute=1000)


def _assigned_battle(engine, *, seconds_ago: float) -> tuple[int, int]:
    """A 2,000-word-a-side battle assigned to a new annotator ``seconds_ago`` (the clock is not waited on)."""
    seed_pool(engine, models=["m-one", "m-two"], prompts=1, words=WORDS, seed=3)
    with session_scope(engine) as session:
        uid = add_user(session, name="ann", role="annotator").id
    battle_id = next_battle(engine, annotator_id=uid, settings=SETTINGS)["battle"]["battle_id"]
    with session_scope(engine) as session:
        assignment = session.exec(sa.select(Assignment).where(Assignment.battle_id == battle_id)).scalars().one()
        assignment.assigned_at = assignment.assigned_at - timedelta(seconds=seconds_ago)
    return uid, battle_id


def _stored_vote(engine) -> Vote:
    with session_scope(engine) as session:
        vote = session.exec(sa.select(Vote)).scalars().one()
        session.expunge(vote)
        return vote


@pytest.mark.parametrize("reading, flagged", [
    (None, True),  # no report: both texts whole, 4,000 words in 120 s
    ({"read_left": 0.25, "read_right": 0.5}, False),  # 1,500 words scrolled past: 90 s needed
    ({"read_left": 0.9, "read_right": 0.0}, False),  # 1,800 words: 108 s needed
    ({"read_left": 1.0, "read_right": 0.05}, True),  # 2,100 words: 126 s needed
    ('{"read_left": 9, "read_right": 9}', True),  # clamped to whole texts
    ({"read_left": 1, "read_right": 1, "seen_left": 0.4, "seen_right": 0.4}, False),  # jumped to both ends
    ({"read_left": 1, "read_right": 1, "seen_left": 0.6, "seen_right": 0.5}, True),  # 2,200 words seen
])
def test_vote_stores_clamped_reading_and_flags_on_words_scrolled_past(engine, reading, flagged):
    uid, battle_id = _assigned_battle(engine, seconds_ago=120)
    ack = submit_vote(engine, annotator_id=uid, battle_id=battle_id, winner="left", settings=SETTINGS,
                      reading=reading)
    assert ack["created"] and ack["flagged"] is flagged
    vote = _stored_vote(engine)
    assert vote.flags == (["too_fast"] if flagged else [])
    assert 120 <= vote.reading_seconds < 3600  # the server's own clock is kept beside the report
    expected = parse_reading(reading)
    assert vote.read_left == (None if expected.read_left is None else min(1.0, expected.read_left))
    assert vote.read_right == (None if expected.read_right is None else min(1.0, expected.read_right))
    assert (vote.seen_left, vote.seen_right) == (expected.seen_left, expected.seen_right)


def test_vote_clamps_active_time_to_the_time_since_assignment(engine):
    uid, battle_id = _assigned_battle(engine, seconds_ago=300)
    submit_vote(engine, annotator_id=uid, battle_id=battle_id, winner="tie", settings=SETTINGS,
                reading={"read_left": 0.5, "read_right": 0.75, "active_seconds": 86400})
    vote = _stored_vote(engine)
    assert (vote.read_left, vote.read_right) == (0.5, 0.75)
    assert 300 <= vote.active_seconds <= vote.reading_seconds
    assert not vote.flagged


def test_bad_report_refuses_the_vote_in_one_line_and_stores_nothing(engine):
    uid, battle_id = _assigned_battle(engine, seconds_ago=300)
    with pytest.raises(UserError, match="read_left must be a number"):
        submit_vote(engine, annotator_id=uid, battle_id=battle_id, winner="tie", settings=SETTINGS,
                    reading={"read_left": [1]})
    with session_scope(engine) as session:
        assert session.exec(sa.select(Vote)).scalars().all() == []
