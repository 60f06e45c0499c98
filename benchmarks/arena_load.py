"""A load generator for the Arena through the app's own HTTP interface (tests and benchmark).

Each simulated annotator signs in with ``POST /login``, then loops: Next battle, then vote (whose answer
reveals the models). How each step travels depends on ``mode``:

- ``gradio``: both as queued Gradio events (how the tab voted before): ``POST /gradio_api/queue/join`` with the
  event's ``fn_index`` and a session hash, then reading ``/gradio_api/queue/data`` (server-sent
  events) until the event completes;
- ``tab``: as the Arena tab sends them: Next and the vote each as one POST outside Gradio's queue
  (``/gradio_api/run/predict`` with the event's ``fn_index``), the vote answered with the reveal;
- ``fast``: Next as the Gradio event, the vote as one ``POST /api/arena/vote``;
- ``api``: both as plain JSON POSTs (``/api/arena/next``, ``/api/arena/vote``).

With several server URLs, each annotator signs in on one of them (in turn); in ``api`` mode each
request then goes to any of them at random with the same sign-in cookie, as a load balancer
without sticky sessions would send it (Gradio's queue needs a page's events on one process).
Vote latency runs from sending the vote to its answer. Every acknowledged vote is recorded so a
caller can check it is stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

VOTE_LABELS = ("A is better", "B is better", "Tie", "Both bad")


@dataclass
class LoadResult:
    """What the clients saw: acknowledged votes, refusals, errors and per-vote latencies (seconds)."""

    acked: list[tuple[str, int, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unknown: list[tuple[str, int]] = field(default_factory=list)
    """Votes whose call broke off in transport: the server may or may not have stored them."""
    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    votes_sent: int = 0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]

    def summary(self) -> dict[str, Any]:
        return {
            "votes_acked": len(self.acked), "votes_sent": self.votes_sent, "refused": len(self.refused),
            "errors": len(self.errors), "unknown": len(self.unknown), "wall_s": round(self.wall_s, 2),
            "votes_per_s": round(len(self.acked) / self.wall_s, 2) if self.wall_s else 0.0,
            "p50_ms": round(self.percentile(50) * 1000, 1), "p99_ms": round(self.percentile(99) * 1000, 1),
        }


def fn_indices(config: dict) -> dict[str, int]:
    """``api_name -> fn_index`` for every event in the app's ``/config``."""
    return {dep["api_name"]: dep.get("id", i) for i, dep in enumerate(config["dependencies"]) if dep.get("api_name")}


async def call_event(
    client, fn_index: int, data: list, *, session_hash: str | None = None, timeout: float = 60.0
) -> dict:
    """Run one event by ``fn_index``; returns its ``process_completed`` message (or an error message).

    ``session_hash`` plays the part of one open page (a fresh one when None).
    """
    session_hash = session_hash or uuid.uuid4().hex[:12]
    joined = await client.post("/gradio_api/queue/join", json={
        "data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None,
    })
    if joined.status_code != 200:
        return {"msg": "join_refused", "success": False, "status": joined.status_code, "detail": joined.text}
    event_id = joined.json()["event_id"]
    async with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash},
                             timeout=timeout) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
                return message
            if message.get("msg") in ("unexpected_error", "close_stream"):
                return {"msg": message.get("msg"), "success": False, "detail": message}
    return {"msg": "stream_ended", "success": False}


async def call_with_retry(client, fn_index: int, data: list, *, session_hash: str, attempts: int = 3) -> dict:
    """:func:`call_event`, retried on a broken connection (e.g. a keep-alive closed by the server
    just as it was reused). Safe for every arena event: Next returns the open battle again, and a
    repeated vote returns the first one."""
    import httpx

    for attempt in range(attempts):
        try:
            return await call_event(client, fn_index, data, session_hash=session_hash)
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def update_value(item: Any) -> Any:
    """The value inside a Gradio output: an update dict's ``value`` or the plain value."""
    if isinstance(item, dict) and "value" in item:
        return item["value"]
    return item


def error_text(message: dict) -> str:
    output = message.get("output") or (message.get("body") if isinstance(message.get("body"), dict) else {}) or {}
    return str(output.get("error") or message.get("detail") or message.get("msg"))


async def sign_in(base_url: str, name: str, password: str):
    """An ``httpx.AsyncClient`` holding the sign-in cookie of ``name`` (None when refused)."""
    import httpx

    client = httpx.AsyncClient(base_url=base_url, timeout=60.0)
    login = await client.post("/login", data={"username": name, "password": password})
    if login.status_code != 200:
        await client.aclose()
        return None
    return client


WINNERS = {"A is better": "left", "B is better": "right", "Tie": "tie", "Both bad": "both_bad"}


async def post_json(client, path: str, payload: dict, attempts: int = 3) -> dict:
    """One JSON POST, retried on a broken connection; ``{"success", "status", "body"}``."""
    import httpx

    for attempt in range(attempts):
        try:
            response = await client.post(path, json=payload)
            return {"success": response.status_code == 200, "status": response.status_code,
                    "body": response.json(), "detail": response.text}
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def call_direct(client, fn_index: int, data: list, *, session_hash: str, attempts: int = 3) -> dict:
    """Run an event outside the queue, as the page does for ``queue=False`` events: one POST,
    answered with the outputs (``{"success", "output": {"data"} | {"error"}}``)."""
    import httpx

    for attempt in range(attempts):
        try:
            response = await client.post("/gradio_api/run/predict", json={
                "data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None,
                "trigger_id": None})
            body = response.json()
            if response.status_code == 200:
                return {"success": True, "output": {"data": body["data"]}}
            return {"success": False, "output": {"error": body.get("error") if isinstance(body, dict) else body},
                    "status": response.status_code}
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


async def next_battle_id(clients, fns: dict[str, int], page: str, mode: str, rng: random.Random) -> tuple[int, dict]:
    """The id of the battle to read (0 when none is left), and the raw answer."""
    if mode == "api":
        shown = await post_json(rng.choice(clients), "/api/arena/next", {})
        return (shown["body"].get("battle", {}).get("battle_id", 0) if shown["success"] else 0), shown
    if mode == "tab":
        shown = await call_direct(clients[0], fns["arena_next"], [], session_hash=page)
    else:
        shown = await call_with_retry(clients[0], fns["arena_next"], [], session_hash=page)
    return (int(update_value(shown["output"]["data"][1]) or 0) if shown.get("success") else 0), shown


async def annotator_loop(
    clients, name: str, fns: dict[str, int], *, deadline: float, result: LoadResult,
    rng: random.Random, think_s: tuple[float, float], max_votes: int, mode: str = "gradio",
) -> None:
    """``clients[0]`` is the process the annotator signed in on; the others carry the same cookie."""
    import httpx

    votes = 0
    page = uuid.UUID(int=rng.getrandbits(128)).hex[:12]
    while time.monotonic() < deadline and votes < max_votes:
        try:
            battle, shown = await next_battle_id(clients, fns, page, mode, rng)
        except httpx.HTTPError as exc:
            result.errors.append(f"{name}: next: {type(exc).__name__}: {exc}")
            continue
        if not shown.get("success"):
            result.errors.append(f"{name}: next: {error_text(shown)}")
            return
        if battle <= 0:
            return  # this annotator has read every battle
        if think_s[1] > 0:
            await asyncio.sleep(rng.uniform(*think_s))
        label = rng.choice(VOTE_LABELS)
        start = time.perf_counter()
        result.votes_sent += 1
        try:
            vote_data = [label, battle, None, None, None, None, "", ""]
            if mode == "gradio":
                ack = await call_with_retry(clients[0], fns["arena_vote"], vote_data, session_hash=page)
            elif mode == "tab":
                ack = await call_direct(clients[0], fns["arena_vote"], vote_data, session_hash=page)
            else:
                target = rng.choice(clients) if mode == "api" else clients[0]
                ack = await post_json(target, "/api/arena/vote", {"battle_id": battle, "winner": WINNERS[label]})
        except httpx.HTTPError as exc:
            result.unknown.append((name, battle))
            result.errors.append(f"{name}: vote: {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - start
        if not ack.get("success"):
            result.refused.append(f"{name}: vote: {error_text(ack)}")
            continue
        result.latencies.append(elapsed)
        result.acked.append((name, battle, label))
        votes += 1
        revealed = ("written by" in json.dumps(ack["output"]["data"]) if mode in ("gradio", "tab")
                    else "model" in ack["body"].get("reveal", {}).get("left", {}))
        if not revealed:
            result.errors.append(f"{name}: vote: the answer did not reveal the models")


def carry_cookies(client, base_url: str):
    """A client on ``base_url`` holding ``client``'s sign-in cookie (another process, same session)."""
    import httpx

    other = httpx.AsyncClient(base_url=base_url, timeout=60.0)
    for key, value in client.cookies.items():
        other.cookies.set(key, value)
    return other


async def run_load(
    base_url: str | list[str], users: list[tuple[str, str]], *, duration_s: float = 30.0, seed: int = 0,
    think_s: tuple[float, float] = (0.0, 0.0), max_votes: int = 10_000, mode: str = "gradio",
    on_clock=None,
) -> LoadResult:
    """Run ``len(users)`` annotators concurrently for ``duration_s``; in-flight calls are finished.

    Sign-in (a deliberately slow password hash) and one warm-up call per process happen before
    the clock starts, so the figures describe voting, not logging in or first-call imports.
    ``on_clock("start"|"stop")`` is called as the clock starts and stops (to read CPU counters).
    """
    urls = [base_url] if isinstance(base_url, str) else list(base_url)
    result = LoadResult()
    homes = [urls[i % len(urls)] for i in range(len(users))]
    clients = await asyncio.gather(*(sign_in(home, n, p) for home, (n, p) in zip(homes, users)))
    extra: list = []
    try:
        for (name, _), client in zip(users, clients):
            if client is None:
                result.errors.append(f"{name}: sign-in refused")
        signed = []
        for (name, _), home, client in zip(users, homes, clients):
            if client is not None:
                others = [carry_cookies(client, url) for url in urls if url != home]
                extra += others
                signed.append((name, [client, *others]))
        if not signed:
            return result
        fns = fn_indices((await signed[0][1][0].get("/config")).json())
        for group in signed[:len(urls)]:  # warm-up on every process: refused, but imports are done
            await call_event(group[1][0], fns["arena_skip"], [0])
            await group[1][0].post("/api/arena/vote", json={"battle_id": 1, "winner": "none"})
        master = random.Random(seed)
        if on_clock is not None:
            on_clock("start")
        start = time.monotonic()
        deadline = start + duration_s
        await asyncio.gather(*(
            annotator_loop(group, name, fns, deadline=deadline, result=result, mode=mode,
                           rng=random.Random(master.randrange(2**32)), think_s=think_s, max_votes=max_votes)
            for name, group in signed
        ))
        result.wall_s = time.monotonic() - start
        if on_clock is not None:
            on_clock("stop")
    finally:
        await asyncio.gather(*(c.aclose() for c in [*clients, *extra] if c is not None))
    return result
