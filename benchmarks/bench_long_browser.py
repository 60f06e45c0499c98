"""Part (a) of the ultra-long benchmarks, ``bench_long.py browser``: one long generation through
the app in headless Chromium (what each figure means: ``bench_long.py``'s docstring, "browser").

Kept apart from ``bench_long.py`` (the service-level parts) because it is the browser's half: the
page probe, the app's CPU time from ``/proc``, the per-1,000-word windows and the scripted server.
Run it through ``bench_long.py``, which owns the command line:

    .venv/bin/python benchmarks/bench_long.py browser --target 10000 --screenshot docs/screenshot-write-10k.png
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench_long import TEMPLATE_PROMPTS, _register, _text_figures, _uptime

PAGE_PROBE = """() => {
  const probe = {longTasks: [], frames: [], started: performance.now()};
  new PerformanceObserver(list => { for (const e of list.getEntries()) probe.longTasks.push([e.startTime, e.duration]); })
    .observe({type: 'longtask', buffered: true});
  let last = performance.now();
  const frame = now => { probe.frames.push(now - last); last = now; requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  probe.updates = 0;  // changes of the text on the page (one per streamed update that carried text)
  const answer = document.querySelector('#lwz-answer');
  new MutationObserver(() => { probe.updates += 1; }).observe(answer, {childList: true, subtree: true, characterData: true});
  window.__probe = probe;
}"""


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _window(samples: list[tuple], at: int) -> dict | None:
    """While the text grew from ``at - 1000`` to ``at`` words (the samples nearest either end): app CPU
    seconds per 1,000 words, milliseconds per page update, and words per second."""
    before = [s for s in samples if s[1] <= at - 1000]
    after = [s for s in samples if s[1] >= at]
    if not before or not after:
        return None
    (t0, w0, c0, u0, *b0), (t1, w1, c1, u1, *b1) = before[-1], after[0]
    if w1 <= w0:
        return None
    window = {"cpu_s_per_1k_words": round(1000 * (c1 - c0) / (w1 - w0), 2),
              "cpu_ms_per_update": round(1000 * (c1 - c0) / (u1 - u0), 2) if u1 > u0 else None,
              "updates_per_1k_words": round(1000 * (u1 - u0) / (w1 - w0)), "words_per_s": round((w1 - w0) / (t1 - t0), 1)}
    if b0 and b1:  # the browser's main thread: busy seconds per 1,000 words and per page update
        window["browser_busy_s_per_1k_words"] = round(1000 * (b1[0] - b0[0]) / (w1 - w0), 3)
        window["browser_busy_ms_per_update"] = round(1000 * (b1[0] - b0[0]) / (u1 - u0), 2) if u1 > u0 else None
        window["browser_busy_share"] = round((b1[0] - b0[0]) / (t1 - t0), 4)
    return window


def _scripted_server(words_per_s: float):
    """An OpenAI-compatible server on 127.0.0.1 that streams varied words at ``words_per_s`` in
    paragraphs, without a model: with ``--scripted`` the browser run measures the app and the
    page alone, as when the model runs on another machine (here vLLM shares the two cores with
    the browser). Returns ``(base_url, stop)``."""
    import random

    from tests.helpers import ScriptedOpenAIServer

    vocab = ("the keeper climbed stairs lamp storm harbour night sea light wind boat island glass salt rope stone "
             "gull tide winter letter brother memory silence window lantern fog bell").split()

    def paced_words(body: dict):
        """Three words a piece (four tokens, as the server counts), paced, until ``max_tokens``."""
        rng, started = random.Random(body.get("seed") or 0), time.monotonic()
        tokens, words, paragraph_end = 0, 0, rng.randint(60, 160)
        while tokens < (body.get("max_tokens") or 1000):
            three = [rng.choice(vocab) + ("." if rng.random() < 0.08 else "") for _ in range(3)]
            words, tokens = words + 3, tokens + 4
            text = " " + " ".join(three)
            if words >= paragraph_end:
                text, paragraph_end = text + "\n\n", words + rng.randint(60, 160)
            yield text
            time.sleep(max(0.0, started + words / words_per_s - time.monotonic()))

    server = ScriptedOpenAIServer(paced_words)
    return server.base_url, server.stop


def bench_browser(args) -> dict:
    """Part (a): one long generation through the app in headless Chromium (see the module's docstring)."""
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_FLAGS
    from tests.live_app import start_live_app

    from evaluation.metrics import distinct_n, length_score
    from storage.catalog import get_model
    from storage.engine import session_scope
    from storage.generations import list_generations

    workdir = Path(tempfile.mkdtemp(prefix="lwz-bench-browser-"))
    stop_server = None
    if args.scripted:
        args.base_url, stop_server = _scripted_server(args.scripted)
        args.model = "scripted"
    elif not args.base_url:  # the default path: the bundled model on a vLLM CPU server of its own
        from tests.vllm_server import start_vllm_server

        print("  starting the vLLM CPU server (a few minutes) ...", file=sys.stderr, flush=True)
        server = start_vllm_server()
        args.base_url, args.model, stop_server = server.base_url, server.model, server.stop
    prompt = args.prompt or TEMPLATE_PROMPTS[0]
    db_url = f"sqlite:///{workdir / 'app.db'}"
    from storage.engine import make_engine, upgrade

    engine = make_engine(db_url)
    upgrade(engine)
    if args.template is not None or args.repetition_penalty is not None or args.scripted:
        _register(engine, args.model, template=args.template or "direct", base_url=args.base_url, model=args.model,
                  penalty=args.repetition_penalty)  # lwz serve keeps an entry already on this server
    # else lwz serve registers the model itself, with the defaults of the model it serves, as for a new user
    engine.dispose()
    load_before = _uptime()
    with start_live_app(workdir, backend="openai", base_url=args.base_url, model=args.model, db_url=db_url) as app, \
            sync_playwright() as playwright:
        with session_scope(app.engine) as session:
            entry = get_model(session, name=args.model)
            registered = {"template": entry.template, "settings": dict(entry.sampling or {})}
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        devtools = page.context.new_cdp_session(page)
        devtools.send("Performance.enable")
        busy_js = lambda: next(m["value"] for m in devtools.send("Performance.getMetrics")["metrics"]  # noqa: E731
                               if m["name"] == "TaskDuration")  # main-thread busy seconds so far
        page.goto(app.url + "/")
        page.wait_for_selector("#lwz-request textarea")
        page.evaluate(PAGE_PROBE)
        page.fill("#lwz-request textarea", prompt)
        page.fill("#lwz-target input", str(args.target))
        page.press("#lwz-target input", "Tab")  # the method line follows the target
        # (seconds, words on the page, app CPU seconds, page updates, browser main-thread busy seconds)
        samples: list[tuple] = [(0.0, 0, 0.0, 0, 0.0)]
        cpu0, busy0, started = _cpu_seconds(app.process.pid), busy_js(), time.monotonic()
        page.click("#lwz-generate")
        deadline = started + args.timeout
        # The page's own live count (LongBench-Write's rule), e.g. "9,412 / 10,000 words (94%)".
        words_js = ("() => [parseInt(((document.querySelector('#lwz-progress .lwz-words')?.innerText || '0')"
                    ".split(' ')[0]).replace(/,/g, '')) || 0, window.__probe.updates]")
        done_js = "() => /#\\d+ · .*words/.test(document.querySelector('#lwz-status')?.innerText || '')"
        next_report = 1000
        while time.monotonic() < deadline:
            time.sleep(args.sample_s)
            words, updates = page.evaluate(words_js)
            samples.append((round(time.monotonic() - started, 2), words, round(_cpu_seconds(app.process.pid) - cpu0, 3),
                            updates, round(busy_js() - busy0, 3)))
            if words >= next_report:
                print(f"  {words:,} words, {samples[-1][0]:.0f} s, app CPU {samples[-1][2]:.1f} s", file=sys.stderr, flush=True)
                next_report += 1000
            if page.evaluate(done_js):
                break
        wall = time.monotonic() - started
        first_word_s = next((s[0] for s in samples if s[1] > 0), None)
        probe = page.evaluate("() => ({longTasks: window.__probe.longTasks, frames: window.__probe.frames, "
                              "elapsed: performance.now() - window.__probe.started})")
        status_line = page.inner_text("#lwz-status")
        method_line = page.inner_text("#lwz-method-why")
        shot = args.screenshot or args.out / "long_browser.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=False)  # the method line, status, count, plan, the opening
        end_shot = shot.with_name(shot.stem + "-end" + shot.suffix)
        page.evaluate("() => document.querySelector('#lwz-answer').lastElementChild?.scrollIntoView({block: 'end'})")
        page.screenshot(path=str(end_shot), full_page=False)  # the ending
        browser.close()
        with session_scope(app.engine) as session:
            (row,) = list_generations(session)[:1]
            session.expunge(row)
    if stop_server is not None:
        stop_server()
    load_after = _uptime()
    frames = sorted(probe["frames"][1:]) or [0.0]
    long_ms = sum(duration for _, duration in probe["longTasks"])
    quantile = lambda q: round(frames[min(len(frames) - 1, int(q * len(frames)))], 1)  # noqa: E731
    final_words = samples[-1][1]
    every_1k = {f"{at // 1000}k": _window(samples, at) for at in range(1000, final_words + 1, 1000)}
    measured = [w["cpu_s_per_1k_words"] for w in every_1k.values() if w]
    params = row.params or {}
    return {
        "sizes": {"runs": 1, "target": args.target, "prompt": prompt, "seed": "random (the page's default)"},
        "registered": registered, "backend": args.base_url, "served_model": args.model,
        "scripted_words_per_s": args.scripted, "repetition_penalty": registered["settings"].get("repetition_penalty"),
        "template": registered["template"],
        "generation": {"id": row.id, "status": row.status, "finish": row.finish_reason,
                       "ending": params.get("ending"), "template_used": params.get("template"), "method": params.get("method"),
                       "words": row.answer_words, "s_l": round(length_score(row.answer_words, args.target), 1),
                       "distinct4": round(distinct_n(row.answer, 4), 3), "tokens": row.completion_tokens,
                       "plan_words": row.think_words, "sections": len(params.get("sections") or []),
                       "words_per_s": round(row.answer_words / wall, 1) if wall else None,
                       **_text_figures(row.answer, params)},
        "status_line": status_line, "method_line": method_line, "wall_s": round(wall, 1),
        "first_word_on_page_s": first_word_s, "words_on_page": final_words,
        "load_before": load_before, "load_after": load_after,
        "app_cpu_s": samples[-1][2], "page_updates": samples[-1][3], "browser_busy_s": samples[-1][4],
        "browser_busy_share": round(samples[-1][4] / wall, 4),
        "app_cpu_ms_per_word": round(1000 * samples[-1][2] / final_words, 2) if final_words else None,
        "per_1k_words_at": every_1k,
        "flatness": round(max(measured) / min(measured), 2) if len(measured) > 1 else None,
        "long_tasks": {"count": len(probe["longTasks"]), "total_ms": round(long_ms, 1),
                       "share_of_wall": round(long_ms / probe["elapsed"], 4) if probe["elapsed"] else None,
                       "longest_ms": round(max((d for _, d in probe["longTasks"]), default=0.0), 1)},
        "frame_gap_ms": {"n": len(frames), "p50": quantile(0.5), "p99": quantile(0.99), "max": round(frames[-1], 1)},
        "samples": samples, "screenshots": [str(shot), str(end_shot)],
    }
