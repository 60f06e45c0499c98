"""Web app overhead against a vLLM server: concurrency ratio and time to first token added.

Starts its own ``lwz serve --backend openai`` on a fresh SQLite database in a temporary folder,
pointed at an already running OpenAI-compatible server (the development vLLM server by default),
then alternates rounds of

- **app**: ``--streams`` simultaneous generations through the app's own HTTP interface
  (``/gradio_api/queue/join`` + the SSE stream, exactly what the browser does); tokens are the
  ``completion_tokens`` the app stored for each row;
- **direct**: the same number of simultaneous chat streams straight to the server, stream *i*
  forced (``min_tokens`` = ``max_tokens``) to the length the app's stream *i* had in that round,
  so both sides do the same work, spread the same way over the streams;

and reports total tokens per second of each, and their ratio (goal >= 0.9). Then it measures the
time to first token, one request at a time, alternating app and direct (goal: < 50 ms added):
for the app, from the POST that starts the event to the first update carrying text (think budget
8 tokens, so that each pair is quick); for the server, from the request to the first content delta.

Each simulated writer first opens the page, untimed: the page's load event, which a browser fires
before its Generate button can be clicked, is where Gradio sets up the page's session.

    .venv/bin/python benchmarks/bench_webapp.py [--base-url http://127.0.0.1:8100/v1 --model smollm2-135m]

Without ``--base-url`` it starts a private vLLM CPU server of the bundled model (as the tests do,
``tests.vllm_server``) and stops it at the end. Writes ``benchmarks/results/webapp.json``: the
sizes, every round, the medians and the machine's load before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from generation.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P  # noqa: E402
from tests.helpers import free_port  # noqa: E402
TTFT_THINK_BUDGET = 8
PROMPT = "Write a short story about a lighthouse keeper who collects storms in glass jars."


def start_app(workdir: Path, base_url: str, model: str) -> tuple[subprocess.Popen, str, str]:
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    port = free_port()
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(REPO / ".venv/bin/lwz"), "--db", db_url, "serve", "--port", str(port), "--backend", "openai",
         "--base-url", base_url, "--model", model],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url, db_url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            sys.exit(f"lwz serve exited: {(workdir / 'serve.log').read_text()[-2000:]}")
        time.sleep(0.5)
    sys.exit("lwz serve did not start")


async def open_page(client: httpx.AsyncClient, load_index: int) -> str:
    """A new page's session, set up by the page's load event as a browser does; returns its hash."""
    from benchmarks.arena_load import call_event

    session = uuid.uuid4().hex[:12]
    loaded = await call_event(client, load_index, [], session_hash=session)
    if not loaded.get("success"):
        raise RuntimeError(f"page load failed: {loaded}")
    return session


async def app_stream(client: httpx.AsyncClient, fn_index: int, model: str, target: int, seed: int,
                     think_budget: int | None = None, *, session: str, result_index: int | None = None) -> dict:
    """One generation through the app from the page ``session``, then the page's follow-up event
    (``result_index``) that shows the downloads. Returns the first-text delay (s) and the end time."""
    from benchmarks.arena_load import call_event

    t0 = time.perf_counter()
    joined = await client.post("/gradio_api/queue/join", json={
        "data": [PROMPT, target, model, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, str(seed), think_budget, "auto"], "fn_index": fn_index,
        "session_hash": session})
    joined.raise_for_status()
    first = None
    async with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if first is None and msg.get("msg") == "process_generating" and (
                    "Writing" in line or "Planning" in line):
                first = time.perf_counter() - t0
            if msg.get("msg") == "process_completed":
                if not msg.get("success"):
                    raise RuntimeError(f"app event failed: {msg}")
                break
    if result_index is not None:  # the follow-up event the page runs next (downloads, history)
        shown = await call_event(client, result_index, [None], session_hash=session)
        if not shown.get("success"):
            raise RuntimeError(f"app follow-up event failed: {shown}")
    return {"ttft": first, "end": time.perf_counter()}


@functools.cache
def same_messages_as_the_app(template: str = "think") -> tuple[list[dict], dict]:
    """The chat messages the app sends for PROMPT (system message, request, the ``<think>``
    pre-fill), so that both sides pay the same prefill and only the app's own cost differs."""
    from generation.backends.base import BackendRequest
    from generation.backends.openai_backend import _chat_messages
    from generation.templates import render

    rendered = render(template, PROMPT)
    request = BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user,
                             assistant=rendered.prefill, use_chat=True, max_tokens=1)
    return _chat_messages(request)


async def direct_stream(base_url: str, model: str, tokens: int, seed: int) -> dict:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
    messages, template_flags = same_messages_as_the_app()  # built before the clock starts
    t0 = time.perf_counter()
    first, count = None, 0
    stream = await client.chat.completions.create(
        model=model, messages=messages, max_tokens=tokens, stream=True,
        temperature=DEFAULT_TEMPERATURE, top_p=DEFAULT_TOP_P, seed=seed, stream_options={"include_usage": True},
        extra_body={"min_tokens": tokens, **template_flags})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and first is None:
            first = time.perf_counter() - t0
        if chunk.usage is not None:
            count = chunk.usage.completion_tokens
    await client.close()
    return {"ttft": first, "end": time.perf_counter(), "tokens": count}


def stored_tokens(db_url: str, after_id: int) -> list[int]:
    from storage.engine import make_engine, session_scope
    from storage.generations import list_generations

    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rows = [g for g in list_generations(s, limit=10_000) if g.id > after_id]
    engine.dispose()
    return [g.completion_tokens or 0 for g in rows]


def last_id(db_url: str) -> int:
    from storage.engine import make_engine, session_scope
    from storage.generations import list_generations

    engine = make_engine(db_url)
    with session_scope(engine) as s:
        rows = list_generations(s, limit=1)
    engine.dispose()
    return rows[0].id if rows else 0


async def concurrency_round(url, db_url, fns, args, seed0) -> dict:
    before = last_id(db_url)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        pages = [await open_page(client, fns["load"]) for _ in range(args.streams)]
        t0 = time.perf_counter()
        results = await asyncio.gather(*(app_stream(client, fns["write"], args.model, args.target_words, seed0 + i,
                                                    args.think_budget, session=page, result_index=fns["write_result"])
                                         for i, page in enumerate(pages)))
        app_wall = max(r["end"] for r in results) - t0
    tokens = stored_tokens(db_url, before)
    app_tps = sum(tokens) / app_wall
    t0 = time.perf_counter()
    direct = await asyncio.gather(*(direct_stream(args.base_url, args.model, max(1, n), seed0 + i)
                                    for i, n in enumerate(tokens)))
    direct_wall = max(r["end"] for r in direct) - t0
    direct_tps = sum(r["tokens"] for r in direct) / direct_wall
    return {"app_tokens": sum(tokens), "app_s": app_wall, "app_tps": app_tps,
            "direct_tokens": sum(r["tokens"] for r in direct), "direct_s": direct_wall, "direct_tps": direct_tps,
            "ratio": app_tps / direct_tps}


async def ttft_pairs(url, fns, args) -> tuple[list[float], list[float]]:
    app, direct = [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        page = await open_page(client, fns["load"])  # one writer, generating again and again
        for i in range(args.ttft_runs):
            # A short plan (8 tokens) keeps each pair quick; the first text comes with the first token either way.
            r = await app_stream(client, fns["write"], args.model, 10, 1000 + i, TTFT_THINK_BUDGET, session=page,
                                 result_index=fns["write_result"])
            app.append(r["ttft"])
            d = await direct_stream(args.base_url, args.model, 16, 1000 + i)
            direct.append(d["ttft"])
    return app, direct


def event_indexes(url: str) -> dict[str, int]:
    """``fn_index`` of the Write tab's Generate (``write``), of its follow-up (``write_result``) and
    of the page's load event (``load``)."""
    config = httpx.get(f"{url}/config", timeout=10).json()
    fns = {}
    for i, dep in enumerate(config["dependencies"]):
        index = dep.get("id", i)
        if dep.get("api_name") in ("write", "write_result"):
            fns[dep["api_name"]] = index
        if any(trigger == "load" for _, trigger in dep.get("targets", [])):
            fns["load"] = index
    return fns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=None,
                        help="OpenAI-compatible server (default: a private vLLM CPU server of the bundled model)")
    parser.add_argument("--model", default="smollm2-135m", help="served model name")
    parser.add_argument("--streams", type=int, default=8, help="simultaneous streams per round")
    parser.add_argument("--target-words", type=int, default=150, help="target length of each app generation")
    parser.add_argument("--think-budget", type=int, default=None,
                        help="think budget (tokens) of each app generation (default: blank, as in the form)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating app/direct rounds")
    parser.add_argument("--ttft-runs", type=int, default=10, help="single-request TTFT pairs")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "webapp.json")
    args = parser.parse_args()

    server = None
    if args.base_url is None:
        from tests.vllm_server import start_vllm_server

        print("starting the vLLM CPU server (a few minutes) ...", file=sys.stderr, flush=True)
        server = start_vllm_server()
        args.base_url, args.model = server.base_url, server.model
    load_before = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="lwz-bench-webapp-"))
    proc, url, db_url = start_app(workdir, args.base_url, args.model)
    try:
        fns = event_indexes(url)
        asyncio.run(ttft_pairs(url, fns, argparse.Namespace(**{**vars(args), "ttft_runs": 1})))  # warm-up
        rounds = [asyncio.run(concurrency_round(url, db_url, fns, args, 100 * r)) for r in range(args.rounds)]
        for r in rounds:
            print(f"round: app {r['app_tokens']} tok in {r['app_s']:.1f} s = {r['app_tps']:.1f} tok/s; "
                  f"direct {r['direct_tokens']} tok in {r['direct_s']:.1f} s = {r['direct_tps']:.1f} tok/s; "
                  f"ratio {r['ratio']:.3f}")
        app_ttft, direct_ttft = asyncio.run(ttft_pairs(url, fns, args))
        added = [a - d for a, d in zip(app_ttft, direct_ttft)]
        result = {
            "command": "python benchmarks/bench_webapp.py " + " ".join(sys.argv[1:]),
            "sizes": {"streams": args.streams, "target_words": args.target_words, "rounds": args.rounds,
                      "ttft_runs": args.ttft_runs, "think_budget": args.think_budget},
            "server": "private vLLM CPU server" if server is not None else args.base_url, "model": args.model,
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": f"{os.cpu_count()} CPU cores",
            "rounds": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in rounds],
            "ttft_app_s": [round(x, 4) for x in app_ttft], "ttft_direct_s": [round(x, 4) for x in direct_ttft],
            "streams": args.streams,
            "ratio_median": round(statistics.median(r["ratio"] for r in rounds), 3),
            "ratios": [round(r["ratio"], 3) for r in rounds],
            "app_tps_median": round(statistics.median(r["app_tps"] for r in rounds), 1),
            "direct_tps_median": round(statistics.median(r["direct_tps"] for r in rounds), 1),
            "ttft_app_ms_median": round(1000 * statistics.median(app_ttft), 1),
            "ttft_direct_ms_median": round(1000 * statistics.median(direct_ttft), 1),
            "ttft_added_ms_median": round(1000 * statistics.median(added), 1),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k not in ("rounds", "ttft_app_s", "ttft_direct_s")},
                         indent=2))
        print(f"written to {args.out}", file=sys.stderr)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
