"""How long a writer waits to be told that a backend is unreachable.

Two cases, each through the real service (``generate_and_store``) on a scratch SQLite database:
a closed port on this machine (connection refused) and an address that drops packets
(``10.255.255.1``, the connect timeout decides). The test suite only checks that the answer is a
one-line error naming the URL and that nothing is stored; the time it takes is measured here.

    .venv/bin/python benchmarks/bench_unreachable.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def time_to_error(engine, model: str) -> tuple[float, str]:
    from core.errors import UserError
    from generation.request import GenerationRequest
    from writing.store import generate_and_store

    start = time.perf_counter()
    try:
        async for _ in generate_and_store(engine, model=model, request=GenerationRequest("Hi.")):
            pass
    except UserError as exc:
        return time.perf_counter() - start, str(exc)
    raise SystemExit(f"{model}: the unreachable backend answered")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from storage.catalog import add_model
    from storage.engine import make_engine, session_scope, upgrade

    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}")
    upgrade(engine)
    cases = {"refused": f"http://127.0.0.1:{closed_port()}/v1", "dropped": "http://10.255.255.1:8000/v1"}
    with session_scope(engine) as session:
        for name, url in cases.items():
            add_model(session, name=name, backend="openai", base_url=url, model_id="m", template="direct")
    results = {}
    for name in cases:
        times, message = [], ""
        for _ in range(args.runs):
            seconds, message = asyncio.run(time_to_error(engine, name))
            times.append(seconds)
        results[name] = {"median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                         "message": message}
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
