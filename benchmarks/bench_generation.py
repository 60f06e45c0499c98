"""Generation benchmarks (issue 3, point 10). Both need a running vLLM server.

(a) ``length``: LongBench-Write length score S_l on the English prompts that ask for at most
    1,000 words, with and without length control, plus the answers' distinct-4-gram ratio (so
    that length bought with repetition shows). Generations go through the real service.
(b) ``overhead``: one stream through ``OpenAIBackend`` against a raw HTTP stream of the same
    request to the same server, alternating runs: tokens per second and time to first token.

    .venv/bin/python benchmarks/bench_generation.py length --base-url http://127.0.0.1:8100/v1
    .venv/bin/python benchmarks/bench_generation.py overhead --base-url http://127.0.0.1:8100/v1

Results are printed as JSON and written to ``--out`` (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "longbench_write_en.jsonl"


def length_score(required: int, produced: int) -> float:
    """LongBench-Write's S_l for one answer: over-length costs a third as much per unit as under."""
    if produced <= 0:
        return 0.0
    if produced > required:
        return 100 * max(0.0, 1 - (produced / required - 1) / 3)
    return 100 * max(0.0, 1 - (required / produced - 1) / 2)


def distinct_4gram_ratio(text: str) -> float:
    """Distinct word 4-grams over all word 4-grams (1.0: no repeated 4-gram)."""
    words = text.lower().split()
    grams = [tuple(words[i:i + 4]) for i in range(len(words) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def load_prompts(max_words: int, limit: int | None, stride: int = 1) -> list[dict]:
    """The prompts asking for at most ``max_words`` words, every ``stride``-th of them (file order)."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["length"] <= max_words][::stride]
    return rows[:limit] if limit else rows


async def _length_run(entry, rows, *, controlled: bool, concurrency: int, seed: int, uncontrolled_max_tokens: int) -> list[dict]:
    from generation.counting import count_words
    from generation.events import Answer, Done
    from generation.request import GenerationRequest
    from generation.service import stream_generation

    limiter = asyncio.Semaphore(concurrency)

    async def one(index: int, row: dict) -> dict:
        request = GenerationRequest(row["prompt"], target_words=row["length"] if controlled else None,
                                    max_tokens=None if controlled else uncontrolled_max_tokens,
                                    think_budget=64 if entry.template == "think" else None, seed=seed + index)
        async with limiter:
            started = time.monotonic()
            answer, done = "", None
            async for event in stream_generation(entry, request):
                if isinstance(event, Answer):
                    answer += event.text
                elif isinstance(event, Done):
                    done = event
        words = count_words(answer)
        print(f"  {'with' if controlled else 'without'} control: target {row['length']}, {words} words, "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return {"length": row["length"], "words": words, "s_l": length_score(row["length"], words),
                "distinct4": distinct_4gram_ratio(answer), "finish": done.finish_reason if done else None,
                "tokens": done.completion_tokens if done else None, "seconds": time.monotonic() - started}

    return await asyncio.gather(*(one(i, r) for i, r in enumerate(rows)))


def bench_length(args) -> dict:
    from storage.models import ModelEntry

    entry = ModelEntry(name="bench", backend="openai", base_url=args.base_url, model_id=args.model,
                       template=args.template, sampling={"api": "chat"})
    rows = load_prompts(args.max_words, args.limit, args.stride)
    result = {"prompts": len(rows), "stride": args.stride, "targets": [r["length"] for r in rows], "max_words": args.max_words, "template": args.template, "model": args.model,
              "base_url": args.base_url, "concurrency": args.concurrency, "seed": args.seed, "conditions": {}}
    started = time.monotonic()

    async def both():
        return await asyncio.gather(*(
            _length_run(entry, rows, controlled=controlled, concurrency=args.concurrency, seed=args.seed,
                        uncontrolled_max_tokens=args.uncontrolled_max_tokens)
            for controlled in (False, True)))

    results = asyncio.run(both())  # both conditions at once, sharing the server
    result["wall_s"] = round(time.monotonic() - started, 1)
    result["uncontrolled_max_tokens"] = args.uncontrolled_max_tokens
    for controlled, runs in zip((False, True), results):
        name = "with_control" if controlled else "without_control"
        result["conditions"][name] = {
            "S_l": round(statistics.mean(r["s_l"] for r in runs), 1),
            "distinct4": round(statistics.mean(r["distinct4"] for r in runs), 3),
            "mean_words_over_target": round(statistics.mean(r["words"] / r["length"] for r in runs), 2),
            "finish_reasons": {k: sum(str(r["finish"]) == k for r in runs) for k in sorted({str(r["finish"]) for r in runs})},
            "runs": runs,
        }
    return result


async def _timed_openai(base_url: str, model: str, body: dict) -> tuple[float, float, int]:
    from generation.backends.base import BackendRequest, Delta, Finish
    from generation.backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend(base_url=base_url, model=model, api="chat")
    request = BackendRequest(prompt="", system=body["messages"][0]["content"], user=body["messages"][1]["content"],
                             assistant="", use_chat=True, max_tokens=body["max_tokens"], min_tokens=body["min_tokens"],
                             temperature=body["temperature"], top_p=body["top_p"], seed=body["seed"])
    start = time.perf_counter()
    first, tokens = None, 0
    async for item in backend.stream(request):
        if isinstance(item, Delta) and first is None:
            first = time.perf_counter()
        if isinstance(item, Finish):
            tokens = item.completion_tokens
    return first - start, time.perf_counter() - start, tokens


async def _timed_raw(base_url: str, body: dict) -> tuple[float, float, int]:
    import httpx

    start = time.perf_counter()
    first, tokens = None, 0
    async with httpx.AsyncClient(timeout=300) as http:
        async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    first = time.perf_counter()
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    return first - start, time.perf_counter() - start, tokens


def bench_overhead(args) -> dict:
    from generation.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P

    body = {"model": args.model, "messages": [{"role": "system", "content": "You are a writer."},
                                              {"role": "user", "content": "Write a long story about a lighthouse."}],
            "max_tokens": args.tokens, "min_tokens": args.tokens, "temperature": DEFAULT_TEMPERATURE, "top_p": DEFAULT_TOP_P, "seed": 1,
            "stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    samples = {"client": [], "raw": []}
    for index in range(args.pairs * 2):
        kind = ("client", "raw")[index % 2] if (index // 2) % 2 == 0 else ("raw", "client")[index % 2]
        ttft, total, tokens = asyncio.run(_timed_openai(args.base_url, args.model, body) if kind == "client"
                                          else _timed_raw(args.base_url, body))
        samples[kind].append({"ttft_ms": ttft * 1000, "tok_per_s": tokens / (total - ttft), "tokens": tokens})

    def summary(rows):
        return {"ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in rows), 1),
                "tok_per_s_median": round(statistics.median(r["tok_per_s"] for r in rows), 2)}

    client, raw = summary(samples["client"]), summary(samples["raw"])
    return {"pairs": args.pairs, "tokens_per_stream": args.tokens, "base_url": args.base_url, "client": client, "raw": raw,
            "throughput_ratio": round(client["tok_per_s_median"] / raw["tok_per_s_median"], 3),
            "ttft_added_ms": round(client["ttft_ms_median"] - raw["ttft_ms_median"], 1), "samples": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["length", "overhead"])
    parser.add_argument("--base-url", default="http://127.0.0.1:8100/v1")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--template", default="direct", choices=["direct", "think"])
    parser.add_argument("--max-words", type=int, default=1000)
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--stride", type=int, default=1, help="every N-th prompt (a spread-out subset)")
    parser.add_argument("--concurrency", type=int, default=4, help="length: streams in flight per condition")
    parser.add_argument("--uncontrolled-max-tokens", type=int, default=1024,
                        help="length: the fixed token cap of the run without control (no target given)")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--pairs", type=int, default=6, help="overhead: alternating client/raw pairs")
    parser.add_argument("--tokens", type=int, default=200, help="overhead: tokens per stream (min = max)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    result = bench_length(args) if args.which == "length" else bench_overhead(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"generation_{args.which}{'_' + args.template if args.which == 'length' else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    brief = {k: v for k, v in result.items() if k != "samples"}
    if "conditions" in brief:
        brief["conditions"] = {k: {m: x for m, x in v.items() if m != "runs"} for k, v in brief["conditions"].items()}
    print(json.dumps(brief, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
