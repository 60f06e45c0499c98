"""Sign-in latency of one user, alone and while 16 wrong sign-ins run at the same moment.

Starts ``lwz serve --auth`` on a fresh SQLite database (the same way the tests do,
:func:`tests.live_app.start_live_app`), then times the victim's ``POST /login`` (right password):

- ``alone``: nothing else running;
- ``one_address``: each victim sign-in is sent together with 16 wrong sign-ins from one attacker
  address (16 names), the attack that the password pool's per-address lane answers;
- ``many_addresses``: the same 16 wrong sign-ins, each from a fresh address of its own, every round
  (a burst from addresses never seen); the victim has signed in before (the pool serves a
  returning name first), from a fresh address of its own too;
- ``many_addresses_first_time``: the same burst, while a user who never signed in before signs in
  (a new name each round): nothing tells it from the crowd, so it waits its turn (reported, not
  bounded);
- ``many_addresses_again``: 16 addresses that each failed once already (a priming round, not
  timed) send their next wrong sign-ins: the pool serves the victim before them. At most
  REPEAT_ROUNDS rounds, so no address reaches the throttle's 10 failures (it would then get cheap
  refusals, not password checks).

Attacker names are fresh every round, so the name throttle never turns the wrong sign-ins into
cheap refusals. The machine's load (``uptime``) is recorded with the figures: on a shared
machine they move with it. Writes ``benchmarks/results/signin.json``.

    .venv/bin/python benchmarks/bench_signin.py --rounds 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.live_app import start_live_app  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "signin.json"
ATTACKERS = 16
REPEAT_ROUNDS = 8


CLIENT = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
"""One client for every thread, made before any timing: a client per request would spend the
benchmark's own CPU on TLS set-up under the interpreter lock, delaying the victim on this side."""


def sign_in(url: str, name: str, password: str, address: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = CLIENT.post(url + "/login", data={"username": name, "password": password},
                           headers={"X-Forwarded-For": address})
    CLIENT.cookies.clear()
    return response.status_code, (time.perf_counter() - started) * 1000


def round_with_attack(url: str, round_no: int, *, spread: bool, fixed: bool = False, victim: str = "victim") -> float:
    """One victim sign-in sent while ATTACKERS wrong sign-ins start at the same moment; its latency in ms.
    ``fixed``: the attackers' addresses are the same every round (10.150.i.2)."""
    start = threading.Barrier(ATTACKERS + 1)
    statuses: list[int] = []

    def attack(i: int) -> None:
        address = f"10.150.{i}.2" if fixed else f"10.{round_no}.{i}.2" if spread else f"10.{round_no}.0.1"
        start.wait()
        statuses.append(sign_in(url, f"nobody-{round_no}-{i}", "wrong", address)[0])

    threads = [threading.Thread(target=attack, args=(i,)) for i in range(ATTACKERS)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.005)  # the wrong sign-ins are sent first
    status, ms = sign_in(url, victim, f"{victim}-pw", f"10.200.{round_no}.1")
    for t in threads:
        t.join()
    assert status == 200, status
    return ms


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 1), "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "samples": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp, start_live_app(
            Path(tmp), auth=True, users=[("victim", "annotator", "victim-pw")]
            + [(f"new{r}", "annotator", f"new{r}-pw") for r in range(args.rounds)]) as app:
        sign_in(app.url, "victim", "victim-pw", "10.250.0.1")  # warm up (the dummy hash, the first session)
        alone = [sign_in(app.url, "victim", "victim-pw", f"10.201.{r}.1")[1] for r in range(args.rounds)]
        one = [round_with_attack(app.url, r + 1, spread=False) for r in range(args.rounds)]
        many = [round_with_attack(app.url, r + 101, spread=True) for r in range(args.rounds)]
        first = [round_with_attack(app.url, r + 141, spread=True, victim=f"new{r}") for r in range(args.rounds)]
        round_with_attack(app.url, 180, spread=True, fixed=True)  # priming: each attacker address fails once
        again = [round_with_attack(app.url, r + 181, spread=True, fixed=True)
                 for r in range(min(args.rounds, REPEAT_ROUNDS))]
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    result = {
        "benchmark": "bench_signin", "command": f"python benchmarks/bench_signin.py --rounds {args.rounds}",
        "attackers": ATTACKERS, "alone": summary(alone), "one_address": summary(one),
        "many_addresses": summary(many), "many_addresses_first_time": summary(first),
        "many_addresses_again": summary(again),
        "slowdown_one_address": round(statistics.median(one) / statistics.median(alone), 2),
        "slowdown_many_addresses": round(statistics.median(many) / statistics.median(alone), 2),
        "slowdown_many_addresses_first_time": round(statistics.median(first) / statistics.median(alone), 2),
        "slowdown_many_addresses_again": round(statistics.median(again) / statistics.median(alone), 2),
        "uptime_before": load_before, "uptime_after": load_after,
        "machine": f"{__import__('os').cpu_count()} CPU cores",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
