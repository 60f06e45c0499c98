"""Two processes write votes to one SQLite file at once; WAL and the busy timeout keep every vote."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from storage.engine import session_scope
from storage.models import Vote
from tests.conftest import REPO_ROOT
from tests.storage.helpers import seed_arena

VOTES_PER_PROCESS = 500

WORKER = """
import os, sys, time
from storage.votes import add_vote
from storage.engine import make_engine, session_scope

url, annotator, first_battle, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
engine = make_engine(url)
engine.connect().close()
open(f"{go}.ready-{annotator}", "w").close()
while not os.path.exists(go):
    time.sleep(0.01)
started = time.time()
for i in range(count):
    with session_scope(engine) as session:  # one committed transaction per vote, as the web app writes them
        add_vote(session, battle_id=first_battle + i, annotator_id=annotator, winner=("left", "right", "tie")[i % 3])
print("done", started, time.time())
"""


@pytest.mark.slow
def test_two_processes_each_write_500_votes(sqlite_engine, sqlite_url, tmp_path):
    seeded = seed_arena(sqlite_engine, battles=VOTES_PER_PROCESS, annotators=2)
    first_battle = seeded.battle_ids[0]
    assert seeded.battle_ids == list(range(first_battle, first_battle + VOTES_PER_PROCESS))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, sqlite_url, str(annotator), str(first_battle),
                          str(VOTES_PER_PROCESS), str(go)], env=env, cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for annotator in seeded.annotator_ids
    ]
    ready = [tmp_path / f"go.ready-{annotator}" for annotator in seeded.annotator_ids]
    while not all(path.exists() for path in ready):  # both interpreters are up before either writes
        assert all(worker.poll() is None for worker in workers), [w.communicate() for w in workers]
        time.sleep(0.05)
    go.touch()
    spans = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        word, started, ended = out.split()
        spans.append((float(started), float(ended)))
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the writers did not overlap: {spans}"
    with session_scope(sqlite_engine) as session:
        per_annotator = dict(session.execute(
            sa.select(Vote.annotator_id, sa.func.count()).group_by(Vote.annotator_id)).all())
        distinct = session.execute(sa.select(sa.func.count(sa.distinct(Vote.battle_id)))).scalar_one()
    assert per_annotator == {a: VOTES_PER_PROCESS for a in seeded.annotator_ids}
    assert distinct == VOTES_PER_PROCESS
