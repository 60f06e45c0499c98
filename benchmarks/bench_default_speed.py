"""The default's speed (issue 24, item 8): the bundled model in-process against the vLLM child that
``make run`` starts, and ``make run``'s time to a usable page and to the first token.

Sizes are fixed before running (below): one request, asked for about 600 words, held to exactly
``TOKENS`` new tokens on both backends (``min_tokens = max_tokens``), so both write the same amount.
``TOKENS`` is 300, not the 800 the whole 600 words would take: on the shared 2-core machine (load
10–20) 800 in-process tokens had not finished after 25 minutes. The Write-tab request on the child
asks for the whole 600 words; the one sent while the child warms up asks for 100 (only its first
token is the figure).

(a) in-process   ``LocalBackend`` on the converted bundled model, in this process, nothing else of
                 ours running: first token, tokens/s and words/s over the whole stream.
(b) make run     ``lwz serve --bundled-via vllm`` on a fresh database, as ``make run`` starts it
                 (process start = t0): the time until ``GET /`` answers (a usable page), the time
                 until the first token of a Write-tab request sent as soon as the page answered
                 (served in-process while the child warms up: request time + the row's ``ttft_ms``),
                 and the time until the child serves the bundled model. Then the same fixed request
                 as (a) on the child (``OpenAIBackend``, the backend the app switches to), and one
                 Write-tab request through the app on the child. Last, ``lwz serve`` gets SIGTERM
                 and the child's process group is checked to be gone.

Each measurement runs once (the machine is shared; ``uptime`` load is recorded before and after).

    .venv/bin/python benchmarks/bench_default_speed.py

Writes benchmarks/results/default_speed.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import group_gone, kill_group  # noqa: E402

REQUEST = "Write a 600-word essay about the history of lighthouses and the people who kept them."
TARGET_WORDS = 600
TOKENS = 300
"""New tokens per backend-level run (about 220 words of the bundled model's English)."""
WARMING_TARGET_WORDS = 100
TEMPERATURE, TOP_P, SEED = 0.6, 0.95, 7
READY_TIMEOUT_S = 900.0
OUT = ROOT / "benchmarks" / "results" / "default_speed.json"


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def fixed_request():
    from generation.backends.base import BackendRequest
    from generation.bundled import BUNDLED_SAMPLING

    return BackendRequest(prompt=REQUEST, system="You are a helpful writer.", user=REQUEST, assistant="",
                          use_chat=True, max_tokens=TOKENS, min_tokens=TOKENS, temperature=TEMPERATURE, top_p=TOP_P,
                          seed=SEED, repetition_penalty=BUNDLED_SAMPLING["repetition_penalty"])


async def stream_rate(backend) -> dict:
    """First token, tokens/s and words/s of one fixed request on ``backend``."""
    from generation.backends.base import Delta, Finish

    started, first, text, tokens = time.monotonic(), None, [], None
    async for item in backend.stream(fixed_request()):
        if isinstance(item, Delta) and item.text and first is None:
            first = time.monotonic() - started
        if isinstance(item, Delta):
            text.append(item.text)
        if isinstance(item, Finish):
            tokens = item.completion_tokens
    elapsed = time.monotonic() - started
    words = len("".join(text).split())
    return {"backend": backend.description, "first_token_s": round(first, 3), "seconds": round(elapsed, 2),
            "tokens": tokens, "words": words, "tokens_per_s": round(tokens / elapsed, 2) if tokens else None,
            "words_per_s": round(words / elapsed, 2)}


def in_process() -> dict:
    from generation.backends.local import GENERATION_THREADS, LocalBackend
    from generation.bundled import ensure_bundled_model

    backend = LocalBackend(str(ensure_bundled_model()))
    loaded = time.monotonic()
    backend._load()
    result = {"load_s": round(time.monotonic() - loaded, 2), "generation_threads": GENERATION_THREADS}
    result.update(asyncio.run(stream_rate(backend)))
    backend.shutdown()
    return result


def write_through_app(client, fn_index: int, engine, target_words: int) -> dict:
    """One Write-tab request through the app; the row's words, tokens, first token and duration."""
    from storage.engine import session_scope
    from storage.generations import list_generations
    from tests.live_app import raw_call

    sent = time.monotonic()
    messages = raw_call(client, fn_index, [REQUEST, target_words, "smollm2-135m", TEMPERATURE, TOP_P, str(SEED), None, "auto"],
                        timeout=READY_TIMEOUT_S)
    if messages[-1].get("msg") != "process_completed" or not messages[-1].get("success"):
        raise RuntimeError(f"the write request failed: {json.dumps(messages[-1])[:500]}")
    with session_scope(engine) as session:
        row = max(list_generations(session), key=lambda g: g.id)
        seconds = row.duration_ms / 1000
        return {"sent_at": sent, "generation_id": row.id, "status": str(row.status), "words": row.answer_words,
                "tokens": row.completion_tokens, "first_token_s": round(row.ttft_ms / 1000, 3),
                "seconds": round(seconds, 2), "words_per_s": round(row.answer_words / seconds, 2),
                "tokens_per_s": round(row.completion_tokens / seconds, 2) if row.completion_tokens else None}


def _wait_for(pattern: str, log_path: Path, process, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log_path.read_text(errors="replace"))
        if found:
            return found
        if process.poll() is not None:
            raise RuntimeError(f"lwz serve exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)
    raise RuntimeError(f"{pattern!r} did not appear within {timeout:.0f} s:\n{log_path.read_text(errors='replace')[-3000:]}")


def save(result: dict) -> None:
    """Write what is measured so far (a run cut short still leaves its figures)."""
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result)[-600:], flush=True)


def make_run(result: dict, top: dict) -> dict:
    import httpx

    from generation.backends.openai_backend import OpenAIBackend
    from storage.engine import make_engine
    from tests.live_app import LWZ, fn_index_of, free_port, gradio_config, http_session, LiveApp

    work = Path(tempfile.mkdtemp(prefix="lwz-default-speed-"))
    db_url, port = f"sqlite:///{work / 'app.db'}", free_port()
    log_path = work / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1"}
    env.pop("LWZ_DATABASE_URL", None)
    subprocess.run([str(LWZ), "--db", db_url, "db", "upgrade"], check=True, capture_output=True, env=env)
    t0 = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(LWZ), "--db", db_url, "serve", "--host", "127.0.0.1", "--port", str(port),
                                    "--bundled-via", "vllm", "--vllm-python", str(ROOT / ".venv-vllm" / "bin" / "python")],
                                   cwd=work, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url, engine = f"http://127.0.0.1:{port}", make_engine(db_url)
    child_pgid = None
    try:
        while True:
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() - t0 > 300:
                raise RuntimeError(f"no page:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        result["page_usable_s"] = round(time.monotonic() - t0, 2)
        child_url = _wait_for(r"warming up at (\S+)", log_path, process, 30).group(1)
        child_pgid = int(subprocess.run(["pgrep", "-P", str(process.pid), "-f", "vllm.entrypoints"],
                                        capture_output=True, text=True).stdout.split()[0])
        app = LiveApp(url=url, db_url=db_url, engine=engine, process=process, log_path=log_path)
        client = http_session(app)
        fn_index = fn_index_of(gradio_config(client), "write")
        warming = write_through_app(client, fn_index, engine, WARMING_TARGET_WORDS)
        result["first_token_from_start_s"] = round(warming.pop("sent_at") - t0 + warming["first_token_s"], 2)
        result["app_write_while_warming"] = warming
        save(top)
        ready = _wait_for(r"now runs on vLLM at \S+ \(ready after (\d+) s\)", log_path, process, READY_TIMEOUT_S)
        result["child_ready_s"] = int(ready.group(1))
        result["load_when_child_ready"] = load()
        result["vllm_child"] = asyncio.run(stream_rate(OpenAIBackend(base_url=child_url, model="smollm2-135m")))
        save(top)
        on_child = write_through_app(client, fn_index, engine, TARGET_WORDS)
        on_child.pop("sent_at")
        result["app_write_on_child"] = on_child
    finally:
        process.send_signal(signal.SIGTERM)  # lwz serve alone: it must stop its child itself
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        if child_pgid is not None:
            result["child_left_after_exit"] = not group_gone(child_pgid, 30)
            kill_group(child_pgid)
        engine.dispose()
        save(top)
    return result


def again_in_process() -> int:
    """(a) alone, after a change to the in-process backend: the earlier figure is kept beside it."""
    result = json.loads(OUT.read_text())
    result.setdefault("in_process_before", []).append({"generation_threads": result["torch_threads"], **result["in_process"], "load_before": result["load_before"],
                                                       "load_after": result["load_after_in_process"]})
    result["load_before"] = load()
    result["in_process"] = in_process()
    result["load_after_in_process"] = load()
    a, b = result["in_process"]["words_per_s"], result["make_run"]["vllm_child"]["words_per_s"]
    result["in_process_over_vllm_words_per_s"] = round(a / b, 3)
    save(result)
    return 0


def main() -> int:
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only-in-process", action="store_true",
                        help="measure (a) again and replace it in the results file, keeping (b)")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup: never leave lwz serve behind

    if args.only_in_process:
        return again_in_process()
    result = {"request": REQUEST, "tokens": TOKENS, "target_words": TARGET_WORDS, "temperature": TEMPERATURE,
              "top_p": TOP_P, "seed": SEED, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_before": load()}
    result["in_process"] = in_process()
    result["load_after_in_process"] = load()
    save(result)
    result["make_run"] = {}
    make_run(result["make_run"], result)
    result["load_after"] = load()
    a, b = result["in_process"]["words_per_s"], result["make_run"]["vllm_child"]["words_per_s"]
    result["in_process_over_vllm_words_per_s"] = round(a / b, 3)
    save(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
