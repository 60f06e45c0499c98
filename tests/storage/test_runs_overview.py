"""Training runs and the read-only overviews behind the Data tab."""

from __future__ import annotations

import pytest

from sqlmodel import select

from storage.votes import add_vote
from storage.catalog import add_model
from storage.engine import session_scope
from core.errors import UserError
from storage.overview import OVERVIEW_TABLES, table_counts, table_frame
from storage.models import TrainingRun
from storage.runs import finish_run, start_run
from tests.storage.helpers import seed_arena


def test_training_run_life(engine):
    with session_scope(engine) as session:
        base = add_model(session, name="base", backend="local")
        run = start_run(session, kind="dpo", base_model="/models/base", config={"beta": 0.1, "steps": 2},
                        dataset_fingerprint="abc123", output_dir="/runs/1")
        other = start_run(session, kind="reward", base_model="/models/base", config={}, dataset_fingerprint=None,
                          output_dir=None)
    assert run.status == "running" and run.finished_at is None
    with session_scope(engine) as session:
        finish_run(session, run_id=run.id, status="complete", metrics={"loss": 0.5}, model_id=base.id)
        finish_run(session, run_id=other.id, status="failed")
    with session_scope(engine) as session:
        runs = list(session.exec(select(TrainingRun).order_by(TrainingRun.id.desc())))
    assert [r.id for r in runs] == [other.id, run.id]
    done = runs[1]
    assert (done.status, done.metrics, done.model_id, done.config) == ("complete", {"loss": 0.5}, base.id,
                                                                       {"beta": 0.1, "steps": 2})
    assert done.finished_at.tzinfo is not None and done.finished_at >= done.created_at
    assert runs[0].status == "failed" and runs[0].metrics == {}


def test_finish_run_rejects_bad_status_and_unknown_run(engine):
    with session_scope(engine) as session:
        run = start_run(session, kind="grpo", base_model="b", config={}, dataset_fingerprint=None, output_dir=None)
        with pytest.raises(ValueError, match="complete or failed"):
            finish_run(session, run_id=run.id, status="running")
        with pytest.raises(UserError, match="no training run 999"):
            finish_run(session, run_id=999, status="failed")


def test_table_counts_and_frames(engine):
    with session_scope(engine) as session:
        assert table_counts(session) == {name: 0 for name in OVERVIEW_TABLES}
    seeded = seed_arena(engine, battles=2, annotators=2)
    with session_scope(engine) as session:
        add_vote(session, battle_id=seeded.battle_ids[0], annotator_id=seeded.annotator_ids[0], winner="left",
                 reason="x" * 500)
        counts = table_counts(session)
        generations = table_frame(session, table="generations")
        votes = table_frame(session, table="votes")
        users = table_frame(session, table="users", limit=1)
        empty_runs = table_frame(session, table="training_runs")
    assert counts == {"models": 2, "prompts": 2, "generations": 4, "battles": 2, "votes": 1, "users": 2,
                      "training_runs": 0}
    assert generations["id"].tolist() == sorted(seeded.generation_ids, reverse=True)
    assert all(len(text) <= 200 for text in generations["answer"])
    assert generations["answer"].iloc[0].endswith("…")
    assert isinstance(generations["params"].iloc[0], str)
    assert votes["reason"].iloc[0] == "x" * 199 + "…"
    assert "password_hash" not in users.columns and users["name"].tolist() == ["ann1"]
    assert empty_runs.empty and "dataset_fingerprint" in empty_runs.columns
    with pytest.raises(KeyError):
        table_frame(session, table="alembic_version")
