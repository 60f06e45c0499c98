"""Arena under load: N annotators vote concurrently through the app's HTTP interface.

Starts a real ``lwz serve --auth`` on a fresh database (SQLite by default, or ``--db URL``),
seeds a pool of hand-made battles, signs N annotators in, and runs them for ``--duration``
seconds (Next battle, then vote, whose answer reveals the models; optional think time between
showing and voting). Then it checks every acknowledged vote is stored exactly once and prints votes/s and p50/p99 vote
latency as one JSON object.

    .venv/bin/python benchmarks/bench_arena.py --annotators 50 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import free_port  # noqa: E402  (the tests' own helper, one copy)


def prepare(db_url: str, *, annotators: int, models: int, prompts: int, words: int, seed: int) -> list[tuple[str, str]]:
    from arena.seed import seed_pool
    from storage.engine import make_engine, session_scope, upgrade
    from storage.users import add_user

    engine = make_engine(db_url)
    upgrade(engine)
    users = [(f"ann{i:03d}", f"pw-{i}") for i in range(annotators)]
    with session_scope(engine) as session:
        for name, password in users:
            add_user(session, name=name, role="annotator", password=password)
    seed_pool(engine, models=[f"bench-model-{i}" for i in range(models)], prompts=prompts, words=words, seed=seed)
    engine.dispose()
    return users


def verify(db_url: str, result) -> dict:
    """Acknowledged votes against stored rows: each acked (annotator, battle) exactly once."""
    import sqlalchemy as sa

    from storage.engine import make_engine
    from storage.models import User, Vote

    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(User.name, Vote.battle_id).join(User, User.id == Vote.annotator_id)).all()
    engine.dispose()
    stored = {}
    for name, battle in rows:
        stored[(name, battle)] = stored.get((name, battle), 0) + 1
    acked = {(n, b) for n, b, _ in result.acked}
    return {
        "stored": len(rows),
        "acked_missing": sum(1 for key in acked if stored.get(key, 0) == 0),
        "doubled": sum(1 for count in stored.values() if count > 1),
        "stored_not_acked": sum(1 for key in stored if key not in acked),
        "stored_not_acked_unexplained": sum(1 for key in stored if key not in acked and key not in set(result.unknown)),
        "acked_twice_by_client": len(result.acked) - len(acked),
    }


def start_server(db_url: str, workdir: Path, port: int, env: dict) -> subprocess.Popen:
    lwz = REPO / ".venv" / "bin" / "lwz"
    log = (workdir / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [str(lwz), "--db", db_url, "serve", "--auth", "--port", str(port)], cwd=workdir, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", **env},
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit((workdir / f"serve-{port}.log").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit("server did not start")


def fresh_postgres_url() -> str:
    """A new, empty database on the local PostgreSQL server (``LWZ_TEST_PG_URL`` or the default)."""
    import uuid

    import psycopg

    admin = os.environ.get("LWZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    name = f"lwz_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + "/" + name


def drop_postgres(url: str) -> None:
    import psycopg

    admin = os.environ.get("LWZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and its children so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def stop_server(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def in_process(cycles: int, *, annotators: int, models: int, prompts: int, words: int, seed: int) -> dict:
    """Server CPU of the arena's own work per Next+vote cycle, without HTTP: the identity check, Next
    and the vote with its reveal, called as the JSON routes call them, one after another in this
    process on a fresh SQLite file (``time.process_time`` around each part)."""
    from storage.engine import make_engine, write_scope
    from storage.sessions import create_session
    from storage.users import get_user
    from webapp.app import AppContext, ServeSettings
    from webapp.vote_api import caller, next_for, vote_and_reveal

    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        users = prepare(db_url, annotators=annotators, models=models, prompts=prompts, words=words, seed=seed)
        engine = make_engine(db_url)
        with write_scope(engine) as session:
            tokens = [create_session(session, user_id=get_user(session, name=name).id) for name, _ in users]
        ctx = AppContext(engine=engine, settings=ServeSettings(auth=True))
        spent = {"identity": 0.0, "next": 0.0, "vote": 0.0}
        done = 0
        clock = time.process_time
        for i in range(cycles + annotators):  # the first round per annotator warms up, uncounted
            token, counted = tokens[i % annotators], i >= annotators
            t0 = clock()
            who = caller(ctx, token)
            t1 = clock()
            shown = next_for(ctx, who=who)
            t2 = clock()
            if "battle" not in shown:
                break
            who = caller(ctx, token)
            t3 = clock()
            vote_and_reveal(ctx, who=who, payload={"battle_id": shown["battle"]["battle_id"], "winner": "tie"})
            t4 = clock()
            if counted:
                spent["identity"] += (t1 - t0) + (t3 - t2)
                spent["next"] += t2 - t1
                spent["vote"] += t4 - t3
                done += 1
        engine.dispose()
    per = {f"{k}_ms_per_cycle": round(v / max(done, 1) * 1000, 3) for k, v in spent.items()}
    return {"in_process_cycles": done, "total_ms_per_cycle": round(sum(spent.values()) / max(done, 1) * 1000, 3),
            **per, "load_avg_1m": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of voting")
    parser.add_argument("--think-min", type=float, default=0.0, help="least seconds between showing and voting")
    parser.add_argument("--think-max", type=float, default=0.0, help="most seconds between showing and voting")
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--words", type=int, default=300, help="words per hand-made answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--db", default=None,
                        help="database URL, or 'postgresql' for a fresh database on the local server "
                             "(default: a fresh SQLite file)")
    parser.add_argument("--processes", type=int, default=1, help="lwz serve processes on the one database")
    parser.add_argument("--mode", choices=["tab", "gradio", "fast", "api"], default="tab",
                        help="tab: as the Arena tab sends them (Next and the vote each one POST outside "
                             "Gradio's queue); gradio: both as queued events (the tab's path before); fast: "
                             "Next queued, the vote as one POST to /api/arena/vote; api: both as JSON POSTs "
                             "spread over the processes")
    parser.add_argument("--in-process", type=int, default=0, metavar="CYCLES",
                        help="instead of serving: CPU of the arena's own work per Next+vote cycle, no HTTP")
    args = parser.parse_args(argv)
    if args.in_process:
        print(json.dumps({"cycles_asked": args.in_process, **in_process(
            args.in_process, annotators=args.annotators, models=args.models, prompts=args.prompts,
            words=args.words, seed=args.seed)}))
        return 0

    from benchmarks.arena_load import run_load

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        fresh_pg = args.db == "postgresql"
        db_url = fresh_postgres_url() if fresh_pg else args.db or f"sqlite:///{workdir / 'bench.db'}"
        try:
            users = prepare(db_url, annotators=args.annotators, models=args.models, prompts=args.prompts,
                            words=args.words, seed=args.seed)
            ports = [free_port() for _ in range(args.processes)]
            processes = [start_server(db_url, workdir, port, {}) for port in ports]
            marks: dict[str, tuple] = {}

            def on_clock(when: str) -> None:  # CPU counters and load while the clock runs, not during sign-in
                marks[when] = ([cpu_seconds(p.pid) for p in processes], time.process_time(), os.getloadavg()[0])

            try:
                result = asyncio.run(run_load([f"http://127.0.0.1:{port}" for port in ports], users,
                                              duration_s=args.duration, seed=args.seed, mode=args.mode,
                                              think_s=(args.think_min, args.think_max), on_clock=on_clock))
            finally:
                for process in processes:
                    stop_server(process)
            (server0, client0, load0), (server1, client1, load1) = marks["start"], marks["stop"]
            server_cpu = [b - a for a, b in zip(server0, server1)]
            cycles = max(1, len(result.acked))
            report = {**vars(args), **result.summary(), **verify(db_url, result),
                      "server_cpu_s": [round(c, 2) for c in server_cpu],
                      "server_cpu_ms_per_cycle": round(sum(server_cpu) / cycles * 1000, 2),
                      "client_cpu_s": round(client1 - client0, 1),
                      "client_cpu_ms_per_cycle": round((client1 - client0) / cycles * 1000, 2),
                      "load_avg_1m": [round(load0, 2), round(load1, 2)], "cpus": os.cpu_count(),
                      "sample_errors": (result.errors + result.refused)[:3]}
        finally:
            if fresh_pg:
                drop_postgres(db_url)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
