"""Stuck rows: a generation whose process was killed stays ``streaming`` until ``lwz serve``
closes it, at start and then periodically, with the stale rule (no save for a while), so a row
another live process is still saving is left alone."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.catalog import add_model, get_or_add_prompt
from storage.engine import make_engine, session_scope, upgrade
from storage.generations import create_generation, get_generation
from storage.models import Generation, utcnow


def _streaming_row(engine, *, saved_s_ago: float) -> int:
    with session_scope(engine) as session:
        model = add_model(session, name="m", backend="local", template="think", replace=True)
        prompt, _ = get_or_add_prompt(session, text="Write about rain.")
        row = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={"seed": 1})
        session.exec(sa.update(Generation).where(Generation.id == row.id)
                     .values(updated_at=utcnow() - timedelta(seconds=saved_s_ago), answer="Rain fell"))
        return row.id


def _status(engine, generation_id: int) -> tuple:
    with session_scope(engine) as session:
        row = get_generation(session, generation_id=generation_id)
        return row.status, row.finish_reason, row.answer


def test_the_sweeper_closes_rows_of_dead_processes_each_round_and_leaves_live_ones(sqlite_engine):
    from lwz_cli.serve import sweep_stale_rows

    live = _streaming_row(sqlite_engine, saved_s_ago=0)
    dead_before = _streaming_row(sqlite_engine, saved_s_ago=3600)
    sweeps: list[threading.Event] = [threading.Event(), threading.Event()]
    counts: list[int] = []
    proceed = threading.Event()

    def on_sweep(count):
        counts.append(count)
        sweeps[len(counts) - 1].set()
        if len(counts) == 1:
            proceed.wait()  # the second round starts only after the test added another dead row

    stop = threading.Event()
    sweeper = threading.Thread(target=sweep_stale_rows, args=(sqlite_engine,),
                               kwargs={"stop": stop, "every_s": 0.01, "on_sweep": on_sweep})
    sweeper.start()
    try:
        assert sweeps[0].wait(60)
        assert _status(sqlite_engine, dead_before) == ("interrupted", "process_died", "Rain fell")
        dead_later = _streaming_row(sqlite_engine, saved_s_ago=3600)
        proceed.set()
        assert sweeps[1].wait(60)
        assert _status(sqlite_engine, dead_later)[0] == "interrupted"
        assert _status(sqlite_engine, live)[0] == "streaming"
        assert counts[:2] == [1, 1]
    finally:
        proceed.set()
        stop.set()
        sweeper.join()


@pytest.mark.slow
def test_lwz_serve_closes_stale_rows_before_it_answers(tmp_path):
    from tests.live_app import start_live_app

    db_url = f"sqlite:///{tmp_path / 'app.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    dead = _streaming_row(engine, saved_s_ago=3600)
    live = _streaming_row(engine, saved_s_ago=0)
    with start_live_app(tmp_path, db_url=db_url, extra_args=["--stall-seconds", "30"]):
        assert _status(engine, dead)[:2] == ("interrupted", "process_died")
        assert _status(engine, live)[0] == "streaming"
    engine.dispose()


def test_lwz_serve_refuses_a_bad_stall_limit_in_one_line(tmp_path):
    from lwz_cli.main import main

    assert main(["--db", f"sqlite:///{tmp_path / 'x.db'}", "serve", "--stall-seconds", "soon"]) == 2
