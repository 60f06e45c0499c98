"""Ultra-long generation benchmarks (issue 14, point 7). Every generation goes through the real
service; every length score is reported beside its repetition (distinct-4: distinct 4-word
sequences over all of them) and how the text ended (natural, concluded on request, cut, short).

(templates)    the embedded model's templates compared at one target (which reads best decides
               the default template of ``lwz models prepare``).
(penalties)    the repetition penalty compared at one target and template (what decides the bundled
               model's own penalty): each value's text, with its ending shown to read.
(buckets)      part (b): S_l per LongBench-Write length bucket (<500, 500-2,000, 2,000-5,000,
               >=5,000 words) on the English prompts, per template; ``--per-bucket N`` runs N
               prompts of each bucket spread over its targets (a subset: long outputs are slow on a
               CPU), ``--concurrency`` of them at once (over all buckets). Without ``--templates``
               it is the default path: the bundled model registered with its own defaults
               (``writing.models.register_model``: template ``auto``, penalty 1.1, the length it
               holds in one request) on a vLLM CPU server the benchmark starts (or ``--base-url``).
               Per bucket: S_l, median distinct-4, the endings, the share of texts ending on a
               complete sentence, the share of sections with a point and the on-point margin (planned
               texts), ``looping`` texts; every run's figures beside. ``--with-request N`` writes one
               request of N words on the same server at the same time (its own results file,
               NAME_request.json); ``--stop-at HH:MM`` (UTC) stops whatever is still writing then,
               and records it as it was (status ``interrupted``).
(request)      one request at ``--target`` words on the default path (as ``buckets``): words, S_l,
               distinct-4 per 1,000-word window, ending, complete-sentence end, on-point figures, time.
(continuation) part (c): one request of T words uninterrupted against the same request cut at
               about half (``max_tokens``) and then continued (``lwz generate --continue``'s path).
(browser)      part (a), in ``benchmarks/bench_long_browser.py``: one generation through the app (``lwz serve`` on a fresh database, the
               model on the vLLM server) driven from headless Chromium, at ``--target`` words
               (10,000 by default). By default it is what ``make run`` gives a new user: the
               bundled model registered by ``lwz serve`` itself with its own defaults
               (``writing.models.register_model``: template ``auto``, penalty 1.1, the length it
               holds in one request), served by a vLLM CPU server the benchmark starts (or the one
               at ``--base-url``); ``--template``/``--repetition-penalty`` override them. Per run:
               words/s, S_l, distinct-4 per 1,000-word window, the ending and finish, whether the
               text ends on a complete sentence, the on-point figures of its sections
               (``evaluation.on_point``), app CPU per 1,000 words at every 1,000 words, ``uptime``
               before and after; ``--screenshot`` keeps the Write tab at the end. It samples the app process's CPU time (``/proc``) against the
               live word count on the page, and the page's long tasks (``PerformanceObserver``)
               and ``requestAnimationFrame`` gaps and the browser main thread's busy time (the
               DevTools ``TaskDuration`` metric), and reports app CPU and browser busy time per 1,000
               words around 1k, 5k and 10k words, the long-task share of wall time and the
               frame-gap percentiles. ``--scripted N`` streams scripted words at N a second instead
               of a model: the app and the page alone, as when the model runs on another machine.

    .venv/bin/python benchmarks/bench_long.py templates --target 600 --prompts 2
    .venv/bin/python benchmarks/bench_long.py penalties --base-url http://127.0.0.1:8100/v1 --target 800 --penalties 1 1.1 1.2
    .venv/bin/python benchmarks/bench_long.py buckets --base-url http://127.0.0.1:8100/v1 --per-bucket 1 --templates plan
    .venv/bin/python benchmarks/bench_long.py buckets --per-bucket 2 --concurrency 4 --with-request 20000 --stop-at 17:30
    .venv/bin/python benchmarks/bench_long.py request --target 20000
    .venv/bin/python benchmarks/bench_long.py continuation --base-url http://127.0.0.1:8100/v1 --target 800
    .venv/bin/python benchmarks/bench_long.py browser --target 10000 --screenshot docs/screenshot-write-10k.png
    .venv/bin/python benchmarks/bench_long.py browser --base-url http://127.0.0.1:8100/v1 --target 10000
    .venv/bin/python benchmarks/bench_long.py browser --scripted 60 --target 10000

Results are printed as JSON and written to ``--out`` (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data" / "longbench_write_en.jsonl"
BUCKETS = (("<500", 0, 500), ("500-2000", 500, 2000), ("2000-5000", 2000, 5000), (">=5000", 5000, 10**9))
TEMPLATE_PROMPTS = [
    "Write a story about a lighthouse keeper who finds an old letter hidden in the wall.",
    "Write an essay on why cities should plant more trees.",
    "Write a travel article about a week spent walking along a rocky coast.",
]


def _engine():
    from storage.engine import make_engine, upgrade

    folder = Path(tempfile.mkdtemp(prefix="lwz-bench-long-"))
    engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
    upgrade(engine)
    return engine


def _register(engine, name: str, *, template: str, base_url: str | None, model: str, penalty: float | None) -> None:
    """``name`` on the vLLM server at ``base_url`` (else the embedded backend), with ``penalty`` as
    its own repetition penalty (None: none)."""
    from storage.catalog import add_model
    from storage.engine import session_scope

    sampling = {} if penalty is None else {"repetition_penalty": penalty}
    with session_scope(engine) as session:
        if base_url:
            add_model(session, name=name, backend="openai", base_url=base_url, model_id=model, template=template,
                      sampling={"api": "chat", **sampling})
        else:
            add_model(session, name=name, backend="local", template=template, sampling=sampling)


def _register_default(engine, *, base_url: str, model: str) -> dict:
    """``model`` on the server at ``base_url`` as ``lwz serve``/``lwz models add`` register it: through
    ``writing.models.register_model`` with no template or settings of ours, so the served model's
    own defaults apply. Returns the entry's template and settings (written in the results)."""
    from storage.engine import session_scope
    from writing.models import register_model

    with session_scope(engine) as session:
        entry = register_model(session, name=model, backend="openai", base_url=base_url, model_id=model)
        return {"name": entry.name, "template": entry.template, "settings": dict(entry.sampling or {})}


def _start_server(args):
    """The vLLM CPU server the default path runs on (as ``tests/vllm_server.py`` starts it), unless
    ``--base-url`` names one. Returns a stop function (None: nothing to stop)."""
    if args.base_url:
        return None
    from tests.vllm_server import start_vllm_server

    print("  starting the vLLM CPU server (a few minutes) ...", file=sys.stderr, flush=True)
    server = start_vllm_server()
    atexit.register(server.stop)  # also when the run is stopped (SIGTERM, Ctrl-C); stop() runs once
    args.base_url, args.model = server.base_url, server.model
    return server.stop


def _stop_time(text: str | None) -> float | None:
    """``HH:MM`` (UTC, today) as a ``time.time()`` instant; None for none."""
    if not text:
        return None
    import datetime as dt

    hours, minutes = (int(part) for part in text.split(":"))
    now = dt.datetime.now(dt.timezone.utc)
    return now.replace(hour=hours, minute=minutes, second=0, microsecond=0).timestamp()


def _measure(row, target: int, seconds: float) -> dict:
    from evaluation.metrics import distinct_n, length_score

    return {"target": target, "words": row.answer_words, "s_l": round(length_score(row.answer_words, target), 1),
            "distinct4": round(distinct_n(row.answer, 4), 3), "status": row.status, "finish": row.finish_reason,
            "ending": (row.params or {}).get("ending"), "tokens": row.completion_tokens, "seconds": round(seconds, 1),
            "plan_words": row.think_words, "sections": len((row.params or {}).get("sections", [])),
            "method": (row.params or {}).get("method"), "template_used": (row.params or {}).get("template"),
            "loops_stopped": len((row.params or {}).get("loops") or [])}


def _generate(engine, model: str, prompt: str, *, target: int, seed: int, think_budget=None, max_tokens=None,
              stop_at: float | None = None):
    """One generation to its row, through the service as the CLI runs it; at ``stop_at``
    (``time.time()``) it is stopped as a closed page stops it, and the row keeps what it wrote."""
    from generation.request import GenerationRequest
    from writing.store import generate_to_row

    started = time.monotonic()
    request = GenerationRequest(prompt, target_words=target, seed=seed, think_budget=think_budget, max_tokens=max_tokens)
    return generate_to_row(engine, model=model, request=request, stop_at=stop_at), time.monotonic() - started


def _summary(runs: list[dict]) -> dict:
    if not runs:
        return {}
    summary = {"n": len(runs), "S_l": round(statistics.mean(r["s_l"] for r in runs), 1),
               "distinct4_median": round(statistics.median(r["distinct4"] for r in runs), 3),
               "endings": {k: sum(str(r["ending"]) == k for r in runs) for k in sorted({str(r["ending"]) for r in runs})},
               "mean_words_over_target": round(statistics.mean(r["words"] / r["target"] for r in runs), 2)}
    if any("ends_on_complete_sentence" in r for r in runs):  # the text figures (_text_figures) were taken
        planned = [r["on_point"] for r in runs if r.get("on_point")]
        sections = sum(p["n_sections"] for p in planned)
        margins = [p["margin"] for p in planned if p["margin"] is not None]
        summary.update({
            "complete_sentence_end_share": round(statistics.mean(bool(r["ends_on_complete_sentence"]) for r in runs), 3),
            "looping": sum(str(r["ending"]) == "looping" for r in runs),
            "loops_stopped_within_texts": sum(r.get("loops_stopped", 0) for r in runs if str(r["ending"]) != "looping"),
            "planned_texts": len(planned), "sections": sections,
            # over all sections of the planned texts (None: no text was planned)
            "sections_with_point_share": round(sum(p["with_point"] * p["n_sections"] for p in planned) / sections, 3)
            if sections else None,
            "on_point_margin_mean": round(statistics.mean(margins), 3) if margins else None})
    return summary


def bench_templates(args) -> dict:
    engine = _engine()
    result = {"target": args.target, "backend": args.base_url or "embedded", "templates": {}}
    for template in args.templates:
        _register(engine, template, template=template, base_url=args.base_url, model=args.model,
                  penalty=args.repetition_penalty)
        runs = []
        for index, prompt in enumerate(TEMPLATE_PROMPTS[: args.prompts]):
            row, seconds = _generate(engine, template, prompt, target=args.target, seed=args.seed + index)
            runs.append({**_measure(row, args.target, seconds), "prompt": prompt[:60], "opening": row.answer[:160]})
            print(f"  {template}: {runs[-1]['words']} words, distinct-4 {runs[-1]['distinct4']}, "
                  f"{runs[-1]['ending']}, {seconds:.0f} s", file=sys.stderr, flush=True)
        result["templates"][template] = {**_summary(runs), "runs": runs}
    return result


def bench_penalties(args) -> dict:
    engine = _engine()
    result = {"target": args.target, "template": args.template, "backend": args.base_url or "embedded", "penalties": {}}
    prompt = args.prompt or TEMPLATE_PROMPTS[0]

    def one(penalty: float) -> tuple[float, dict]:
        name = f"p{penalty:g}"
        _register(engine, name, template=args.template, base_url=args.base_url, model=args.model, penalty=penalty)
        row, seconds = _generate(engine, name, prompt, target=args.target, seed=args.seed)
        run = {**_measure(row, args.target, seconds), "opening": row.answer[:200], "ending_text": row.answer[-300:]}
        print(f"  penalty {penalty:g}: {run['words']} words, distinct-4 {run['distinct4']}, {run['ending']}, "
              f"{seconds:.0f} s", file=sys.stderr, flush=True)
        return penalty, run

    with ThreadPoolExecutor(max_workers=len(args.penalties)) as pool:  # the server batches them
        for penalty, run in pool.map(one, args.penalties):
            result["penalties"][f"{penalty:g}"] = run
    return result


def _spread(rows: list[dict], n: int) -> list[dict]:
    """``n`` of ``rows`` (sorted by target) spread evenly over the bucket, shortest and longest included."""
    rows = sorted(rows, key=lambda r: r["length"])
    if n >= len(rows):
        return rows
    if n == 1:
        return [rows[0]]
    return [rows[round(i * (len(rows) - 1) / (n - 1))] for i in range(n)]


def bench_buckets(args) -> dict:
    """Part (b): S_l per bucket, per template (``--templates``), or on the default path (none given:
    the model registered with its own defaults, see the module's docstring)."""
    import threading

    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    stop_server = _start_server(args) if args.templates is None else None
    engine = _engine()
    stop_at = _stop_time(args.stop_at)
    result = {"sizes": {"per_bucket": args.per_bucket, "concurrency": args.concurrency, "of_prompts": len(rows),
                        "with_request_words": args.with_request, "stop_at_utc": args.stop_at},
              "per_bucket": args.per_bucket, "buckets": args.buckets or "all", "backend": args.base_url or "embedded",
              "served_model": args.model, "load_before": _uptime(), "templates": {}}
    if args.templates is None:
        registered = _register_default(engine, base_url=args.base_url, model=args.model)
        result["registered"] = registered
        result["repetition_penalty"] = registered["settings"].get("repetition_penalty")
        entries = [(registered["template"], args.model)]  # (label in the results, model name)
    else:
        for template in args.templates:
            _register(engine, template, template=template, base_url=args.base_url, model=args.model,
                      penalty=args.repetition_penalty)
        entries = [(template, template) for template in args.templates]
    figures_lock, partial_lock = threading.Lock(), threading.Lock()
    request_result: dict = {}

    def the_request():
        """The long request beside the buckets (``--with-request``): its own results file."""
        row, seconds = _generate(engine, entries[0][1], args.prompt or TEMPLATE_PROMPTS[0], target=args.with_request,
                                 seed=args.seed, stop_at=stop_at)
        with figures_lock:
            request_result.update(_request_figures(row, args.with_request, seconds, args.prompt or TEMPLATE_PROMPTS[0]))
        print(f"  request: target {args.with_request}, {row.answer_words} words, {row.status}, "
              f"{request_result['ending']}, {seconds:.0f} s", file=sys.stderr, flush=True)

    for label, model in entries:
        chosen = []  # (bucket, index, item) over all buckets, so --concurrency spans them
        for name, low, high in BUCKETS:
            if args.buckets and name not in args.buckets:
                continue
            in_bucket = [r for r in rows if low <= r["length"] < high]
            done = _spread(in_bucket, args.skip_spread) if args.skip_spread else []
            chosen += [(name, r) for r in _spread(in_bucket, args.per_bucket) if r not in done]
        per_bucket: dict = {name: {"runs": []} for name, _ in chosen}
        result["templates"][label] = per_bucket

        def one(indexed, label=label, model=model, per_bucket=per_bucket):
            index, (name, item) = indexed
            row, seconds = _generate(engine, model, item["prompt"], target=item["length"], seed=args.seed + index,
                                     stop_at=stop_at)
            with figures_lock:  # one embedder at a time
                figures = _text_figures(row.answer, row.params or {})
            run = {**_measure(row, item["length"], seconds), "bucket": name, "prompt": item["prompt"][:80], **figures}
            print(f"  {label} {name}: target {item['length']}, {row.answer_words} words, distinct-4 "
                  f"{run['distinct4']}, {run['ending']}, {seconds:.0f} s", file=sys.stderr, flush=True)
            with partial_lock:  # what is done so far, should a long run be stopped
                runs = per_bucket[name]["runs"] + [run]
                per_bucket[name] = {**_summary(runs), "runs": runs}
                args.out.mkdir(parents=True, exist_ok=True)
                (args.out / f"{args.name or 'long_buckets'}.partial.json").write_text(
                    json.dumps(result, indent=2, ensure_ascii=False))
            return run

        extra = threading.Thread(target=the_request) if args.with_request and label == entries[0][0] else None
        if extra is not None:
            extra.start()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:  # the server batches them
            list(pool.map(one, enumerate(chosen)))
        if extra is not None:
            extra.join()
    result["load_after"] = _uptime()
    if stop_server is not None:
        stop_server()
    if request_result:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{args.name or 'long_buckets'}_request.json"
        path.write_text(json.dumps({**request_result, "served_model": args.model, "registered": result.get("registered"),
                                    "beside": "the buckets run, on the same server at the same time",
                                    "load_at_end": result["load_after"]}, indent=2, ensure_ascii=False))
        result["request"] = {k: v for k, v in request_result.items() if k not in ("distinct4_per_1k_window", "last_words", "section_margins")}
        result["request"]["file"] = path.name
    return result


def _request_figures(row, target: int, seconds: float, prompt: str) -> dict:
    """One long request's figures: its measure, the text figures, and what the row says of it."""
    params = row.params or {}
    return {**_measure(row, target, seconds), "prompt": prompt, "method": params.get("method"),
            "template_used": params.get("template"), "words_per_s": round(row.answer_words / seconds, 1) if seconds else None,
            **_text_figures(row.answer, params)}


def bench_request(args) -> dict:
    """One request at ``--target`` on the default path (see the module's docstring)."""
    stop_server = _start_server(args)
    engine = _engine()
    registered = _register_default(engine, base_url=args.base_url, model=args.model)
    load_before = _uptime()
    prompt = args.prompt or TEMPLATE_PROMPTS[0]
    row, seconds = _generate(engine, args.model, prompt, target=args.target, seed=args.seed, stop_at=_stop_time(args.stop_at))
    load_after = _uptime()
    if stop_server is not None:
        stop_server()
    return {"sizes": {"runs": 1, "target": args.target, "stop_at_utc": args.stop_at}, "registered": registered,
            "repetition_penalty": registered["settings"].get("repetition_penalty"),
            "backend": args.base_url, "served_model": args.model, "load_before": load_before, "load_after": load_after,
            **_request_figures(row, args.target, seconds, prompt)}


def bench_continuation(args) -> dict:
    """The same request (target T, seed s) once straight through, once cut near half and continued."""
    import asyncio
    from contextlib import aclosing

    from writing.continuation import continue_and_store
    from storage.engine import session_scope
    from storage.generations import get_generation

    engine = _engine()
    _register(engine, "m", template=args.template, base_url=args.base_url, model=args.model,
                  penalty=args.repetition_penalty)
    prompt = TEMPLATE_PROMPTS[0]
    whole, whole_s = _generate(engine, "m", prompt, target=args.target, seed=args.seed, think_budget=0)
    half_tokens = max(16, int((whole.completion_tokens or 2 * args.target) / 2))
    # Cut at about half: the same request with its answer capped by max_tokens (status truncated).
    cut, cut_s = _generate(engine, "m", prompt, target=args.target, seed=args.seed, think_budget=0,
                           max_tokens=half_tokens)
    from sqlalchemy import update

    from storage.models import Generation

    with session_scope(engine) as session:  # the continuation is held to the target, not the cap
        params = {**cut.params, "max_tokens": None}
        session.exec(update(Generation).where(Generation.id == cut.id).values(params=params))

    async def go():
        async with aclosing(continue_and_store(engine, generation_id=cut.id)) as events:
            async for _ in events:
                pass

    started = time.monotonic()
    asyncio.run(go())
    continued_s = time.monotonic() - started
    with session_scope(engine) as session:
        grown = get_generation(session, generation_id=cut.id)
        session.expunge(grown)
    return {
        "target": args.target, "template": args.template, "backend": args.base_url or "embedded",
        "uninterrupted": _measure(whole, args.target, whole_s),
        "cut_then_continued": {**_measure(grown, args.target, cut_s + continued_s), "cut_words": cut.answer_words,
                               "cut_seconds": round(cut_s, 1), "continue_seconds": round(continued_s, 1),
                               "continuations": grown.params.get("continuations")},
        "cost_ratio_seconds": round((cut_s + continued_s) / whole_s, 2) if whole_s else None,
    }


def _uptime() -> str:
    """``uptime``'s line (the machine's load, written beside every timing)."""
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _text_figures(answer: str, params: dict) -> dict:
    """What the finished text reads as: distinct-4 per 1,000-word window, whether it ends on a
    complete sentence, and how its sections keep to their points."""
    from evaluation.metrics import distinct_n
    from evaluation.on_point import row_on_point
    from generation.control import last_sentence_end

    words = answer.split()
    windows = [round(distinct_n(" ".join(words[i:i + 1000]), 4), 3) for i in range(0, len(words), 1000)]
    end = answer.rstrip()
    figures = {"distinct4_per_1k_window": windows, "ends_on_complete_sentence": bool(end) and last_sentence_end(end) == len(end),
               "last_words": " ".join(words[-60:])}
    if (params or {}).get("sections"):
        point = row_on_point(answer, params).as_dict()
        figures["on_point"] = {**{k: (round(v, 3) if isinstance(v, float) else v) for k, v in point.items() if k != "sections"},
                               "n_sections": len(point["sections"]),
                               "section_margins": [None if s["margin"] is None else round(s["margin"], 3) for s in point["sections"]]}
    else:
        figures["on_point"] = None  # written in one request: no sections, no points
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("templates", "penalties", "buckets", "continuation", "browser", "request"))
    parser.add_argument("--base-url", help="a vLLM server (default: the embedded model)")
    parser.add_argument("--model", default="smollm2-135m", help="served model name (with --base-url)")
    parser.add_argument("--templates", nargs="+", default=None,
                        help="templates: those compared (default think direct plan); buckets: templates registered "
                             "by hand (default: none, the model's own as registered)")
    parser.add_argument("--template", default=None,
                        help="continuation: the template (default direct); browser: override the model's own (default: as lwz serve registers it)")
    parser.add_argument("--screenshot", type=Path, help="browser: the Write tab at the end, here (and NAME-end.png: the ending)")
    parser.add_argument("--name", help="results file name without .json (default long_PART)")
    parser.add_argument("--target", type=int, default=None, help="target words (default 600; browser 10,000)")
    parser.add_argument("--prompt", help="browser: the request (default: the lighthouse story)")
    parser.add_argument("--scripted", type=float, metavar="WORDS_PER_S",
                        help="browser: stream scripted words at this rate instead of a model (the app and page alone)")
    parser.add_argument("--sample-s", type=float, default=1.0, help="browser: seconds between samples")
    parser.add_argument("--timeout", type=float, default=3600, help="browser: give up after this many seconds")
    parser.add_argument("--prompts", type=int, default=2, help="templates: prompts per template (at most 3)")
    parser.add_argument("--per-bucket", type=int, default=1,
                        help="buckets: prompts per bucket, spread over its targets (shortest and longest included)")
    parser.add_argument("--skip-spread", type=int, default=0, metavar="N",
                        help="buckets: leave out the prompts an earlier run with --per-bucket N took (to finish a bucket)")
    parser.add_argument("--concurrency", type=int, default=1, help="buckets: generations at once (the server batches them)")
    parser.add_argument("--buckets", nargs="+", choices=[b[0] for b in BUCKETS], help="buckets to run (default: all)")
    parser.add_argument("--with-request", type=int, metavar="WORDS",
                        help="buckets: one request of WORDS words on the same server at the same time")
    parser.add_argument("--stop-at", metavar="HH:MM", help="buckets/request: stop what is still writing at this UTC time")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--penalties", type=float, nargs="+", default=[1.0, 1.1, 1.2],
                        help="penalties: the repetition penalties to compare (1 is none)")
    parser.add_argument("--repetition-penalty", type=float, default=None,
                        help="the model's repetition penalty (default none; the bundled model's own is 1.1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.target is None:
        args.target = 10_000 if args.part == "browser" else 600
    if args.template is None and args.part in ("continuation", "penalties"):
        args.template = "direct"
    if args.templates is None and args.part == "templates":
        args.templates = ["think", "direct", "plan"]
    # a SIGTERM ends the run as Ctrl-C does: the vLLM server it started is stopped (atexit)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    if args.part == "browser":  # its own file: the app in Chromium
        from bench_long_browser import bench_browser
    result = {"templates": bench_templates, "penalties": bench_penalties, "buckets": bench_buckets, "continuation": bench_continuation,
              "browser": lambda args: bench_browser(args), "request": bench_request}[args.part](args)
    result["wall_s"] = round(time.monotonic() - started, 1)
    result.setdefault("repetition_penalty", args.repetition_penalty)
    result["load_at_end"] = [round(x, 1) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name or 'long_' + args.part}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "samples")}, indent=2, ensure_ascii=False)[:6000])
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
