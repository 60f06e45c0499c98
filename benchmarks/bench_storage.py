"""Storage benchmark: how fast votes go in, and how fast they come back out as a battles table.

Three figures per database:
  * bulk inserts/s: ``storage.votes.bulk_insert_votes``, one transaction per chunk of 5,000 votes;
  * single-transaction inserts/s: ``storage.votes.add_vote`` inside its own ``session_scope``
    (one committed transaction per vote), as the web app writes a vote;
  * the time to read every vote as the battles table for rating (``storage.votes.votes_table``).

Each run uses a scratch database that it creates and removes: a temporary SQLite file for
``--db sqlite``; for a PostgreSQL URL, a new database on that server (dropped at the end).
The fixtures (models, prompts, generations, battles, annotators) are written with plain bulk
inserts and are not timed. Randomness (which side wins) comes from ``--seed``.

    .venv/bin/python benchmarks/bench_storage.py --votes 100000 --single 5000 \\
        --db sqlite --db postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CHUNK = 5_000
WINNERS = ("left", "right", "tie", "both_bad")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--votes", type=int, default=100_000, help="votes written in bulk (default 100,000)")
    parser.add_argument("--single", type=int, default=5_000,
                        help="votes then written one transaction each, on top of the bulk ones (default 5,000)")
    parser.add_argument("--db", action="append", metavar="URL",
                        help="'sqlite' (a temporary file) or a PostgreSQL server URL; repeat for several "
                             "(default: sqlite and postgresql://postgres@127.0.0.1:5432/test)")
    parser.add_argument("--annotators", type=int, default=20, help="distinct annotators (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the vote choices")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    if args.votes < 1 or args.single < 0 or args.annotators < 1:
        parser.error("--votes and --annotators must be positive, --single zero or more")
    args.db = args.db or ["sqlite", "postgresql://postgres@127.0.0.1:5432/test"]
    return args


@contextmanager
def scratch_database(spec: str) -> Iterator[str]:
    """A URL of an empty database for ``spec``, removed afterwards."""
    if spec == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lwz-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(spec).set(drivername="postgresql")
    name = f"lwz_bench_{uuid.uuid4().hex[:10]}"
    admin = server.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_fixtures(engine, *, battles: int, annotators: int) -> tuple[list[int], list[int]]:
    """Models, prompts, generations, battles and annotators for the votes; returns (battle ids, annotator ids)."""
    import sqlalchemy as sa

    from storage.engine import session_scope
    from storage.models import Battle, Generation, ModelEntry, Prompt, User, utcnow

    now = utcnow()
    with session_scope(engine) as session:
        session.execute(sa.insert(ModelEntry), [
            {"name": f"model-{i}", "backend": "local", "template": "think", "sampling": {}, "created_at": now}
            for i in range(4)])
        model_ids = session.execute(sa.select(ModelEntry.id).order_by(ModelEntry.id)).scalars().all()
        session.execute(sa.insert(User), [
            {"name": f"annotator-{i}", "role": "annotator", "password_hash": "", "flagged": False, "created_at": now}
            for i in range(annotators)])
        annotator_ids = session.execute(sa.select(User.id).order_by(User.id)).scalars().all()
        session.execute(sa.insert(Prompt), [
            {"text": f"Write {i} words.", "category": f"cat-{i % 8}", "target_words": 100 + i, "language": "en",
             "content_hash": f"{i:064x}", "created_at": now} for i in range(battles)])
        prompt_ids = session.execute(sa.select(Prompt.id).order_by(Prompt.id)).scalars().all()
        for start in range(0, battles, CHUNK):
            chunk = prompt_ids[start:start + CHUNK]
            session.execute(sa.insert(Generation), [
                {"prompt_id": p, "model_id": model_ids[(i + side) % len(model_ids)], "think": "", "answer": "text",
                 "params": {}, "status": "complete", "think_words": 0, "answer_words": 500 + side, "in_pool": True,
                 "extra": {}, "created_at": now, "updated_at": now}
                for i, p in enumerate(chunk, start=start) for side in (0, 1)])
        generation_ids = session.execute(sa.select(Generation.id).order_by(Generation.id)).scalars().all()
        for start in range(0, battles, CHUNK):
            session.execute(sa.insert(Battle), [
                {"prompt_id": prompt_ids[b], "left_generation_id": generation_ids[2 * b],
                 "right_generation_id": generation_ids[2 * b + 1], "mode": "pool", "extra": {}, "created_at": now}
                for b in range(start, min(start + CHUNK, battles))])
        battle_ids = session.execute(sa.select(Battle.id).order_by(Battle.id)).scalars().all()
    return list(battle_ids), list(annotator_ids)


def run_one(spec: str, args: argparse.Namespace) -> dict:
    import pandas  # noqa: F401  (imported before timing: the read figure is the query, not the import)
    from tqdm import tqdm

    from storage.votes import add_vote, bulk_insert_votes, votes_table
    from storage.engine import make_engine, session_scope, upgrade

    rng = random.Random(args.seed)
    total = args.votes + args.single
    with scratch_database(spec) as url:
        engine = make_engine(url)
        upgrade(engine)
        battles = math.ceil(total / args.annotators)
        battle_ids, annotator_ids = seed_fixtures(engine, battles=battles, annotators=args.annotators)
        pairs = [(b, a) for b in battle_ids for a in annotator_ids][:total]
        rng.shuffle(pairs)
        bulk_pairs, single_pairs = pairs[:args.votes], pairs[args.votes:]
        label = engine.dialect.name

        started, cpu = time.perf_counter(), time.process_time()
        with tqdm(total=len(bulk_pairs), desc=f"{label} bulk", unit="vote", file=sys.stderr) as bar:
            for start in range(0, len(bulk_pairs), CHUNK):
                rows = [{"battle_id": b, "annotator_id": a, "winner": rng.choice(WINNERS),
                         "reading_seconds": rng.uniform(20, 600)} for b, a in bulk_pairs[start:start + CHUNK]]
                with session_scope(engine) as session:
                    bulk_insert_votes(session, rows=rows)
                bar.update(len(rows))
        bulk_s, bulk_cpu = time.perf_counter() - started, time.process_time() - cpu

        started, cpu = time.perf_counter(), time.process_time()
        for battle_id, annotator_id in tqdm(single_pairs, desc=f"{label} single", unit="vote", file=sys.stderr):
            with session_scope(engine) as session:
                add_vote(session, battle_id=battle_id, annotator_id=annotator_id, winner=rng.choice(WINNERS),
                         reading_seconds=rng.uniform(20, 600))
        single_s, single_cpu = time.perf_counter() - started, time.process_time() - cpu

        started, cpu = time.perf_counter(), time.process_time()
        with session_scope(engine) as session:
            frame = votes_table(session)
        read_s, read_cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
    if len(frame) != total:
        raise SystemExit(f"{label}: read {len(frame)} votes, expected {total}")
    return {
        "database": label,
        "bulk_votes": len(bulk_pairs),
        "bulk_votes_per_s": len(bulk_pairs) / bulk_s,
        "bulk_votes_per_cpu_s": len(bulk_pairs) / bulk_cpu,
        "single_votes": len(single_pairs),
        "single_votes_per_s": len(single_pairs) / single_s if single_pairs else None,
        "single_votes_per_cpu_s": len(single_pairs) / single_cpu if single_pairs else None,
        "read_votes": len(frame),
        "read_s": read_s,
        "read_cpu_s": read_cpu,
        "load_average_1min_after": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    results = [run_one(spec, args) for spec in args.db]
    print(f"load average before: {load_before:.1f} (2 cores: above 2 means other work shared the CPU)")
    print("wall-clock rates, with the client's CPU-time rates in brackets (its own cost, free of other load)")
    print(f"{'database':<11}{'bulk votes/s':>22}{'single-tx votes/s':>22}{'votes_table read':>26}")
    for r in results:
        single = (f"{r['single_votes_per_s']:,.0f} [{r['single_votes_per_cpu_s']:,.0f}]"
                  if r["single_votes_per_s"] else "-")
        print(f"{r['database']:<11}{r['bulk_votes_per_s']:>13,.0f} [{r['bulk_votes_per_cpu_s']:,.0f}]"
              f"{single:>22}{r['read_s']:>9.2f} s [{r['read_cpu_s']:.2f} s] ({r['read_votes']:,})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
