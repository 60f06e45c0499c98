"""Ultra-long generation benchmarks (issue 14, point 7). Every generation goes through the real
service; every length score is reported beside its repetition (distinct-4: distinct 4-word
sequences over all of them) and how the text ended (natural, concluded on request, cut, short).

(templates)    the embedded model's templates compared at one target (which reads best decides
               the default template of ``lwz models prepare``).
(buckets)      part (b): S_l per LongBench-Write length bucket (<500, 500-2,000, 2,000-5,000,
               >=5,000 words) on the English prompts, per template; ``--per-bucket N`` runs the
               first N prompts of each bucket (a subset: long outputs are slow on a CPU).
(continuation) part (c): one request of T words uninterrupted against the same request cut at
               about half (``max_tokens``) and then continued (``lwz generate --continue``'s path).

Part (a), the browser run, is not here (see docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_long.py templates --target 600 --prompts 2
    .venv/bin/python benchmarks/bench_long.py buckets --base-url http://127.0.0.1:8100/v1 --per-bucket 1
    .venv/bin/python benchmarks/bench_long.py continuation --base-url http://127.0.0.1:8100/v1 --target 800

Results are printed as JSON and written to ``--out`` (default benchmarks/results/).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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


def _register(engine, name: str, *, template: str, base_url: str | None, model: str) -> None:
    from storage.catalog import add_model
    from storage.engine import session_scope

    with session_scope(engine) as session:
        if base_url:
            add_model(session, name=name, backend="openai", base_url=base_url, model_id=model, template=template,
                      sampling={"api": "chat"})
        else:
            add_model(session, name=name, backend="local", template=template)


def _measure(row, target: int, seconds: float) -> dict:
    from evaluation.metrics import distinct_n, length_score

    return {"target": target, "words": row.answer_words, "s_l": round(length_score(row.answer_words, target), 1),
            "distinct4": round(distinct_n(row.answer, 4), 3), "status": row.status, "finish": row.finish_reason,
            "ending": (row.params or {}).get("ending"), "tokens": row.completion_tokens, "seconds": round(seconds, 1),
            "plan_words": row.think_words, "sections": len((row.params or {}).get("sections", []))}


def _generate(engine, model: str, prompt: str, *, target: int, seed: int, think_budget=None, max_tokens=None):
    from generation.request import GenerationRequest
    from generation.service import generate_to_row

    started = time.monotonic()
    row = generate_to_row(engine, model=model, request=GenerationRequest(prompt, target_words=target, seed=seed,
                                                                          think_budget=think_budget, max_tokens=max_tokens))
    return row, time.monotonic() - started


def _summary(runs: list[dict]) -> dict:
    if not runs:
        return {}
    return {"n": len(runs), "S_l": round(statistics.mean(r["s_l"] for r in runs), 1),
            "distinct4_median": round(statistics.median(r["distinct4"] for r in runs), 3),
            "endings": {k: sum(str(r["ending"]) == k for r in runs) for k in sorted({str(r["ending"]) for r in runs})},
            "mean_words_over_target": round(statistics.mean(r["words"] / r["target"] for r in runs), 2)}


def bench_templates(args) -> dict:
    engine = _engine()
    result = {"target": args.target, "backend": args.base_url or "embedded", "templates": {}}
    for template in args.templates:
        _register(engine, template, template=template, base_url=args.base_url, model=args.model)
        runs = []
        for index, prompt in enumerate(TEMPLATE_PROMPTS[: args.prompts]):
            row, seconds = _generate(engine, template, prompt, target=args.target, seed=args.seed + index)
            runs.append({**_measure(row, args.target, seconds), "prompt": prompt[:60], "opening": row.answer[:160]})
            print(f"  {template}: {runs[-1]['words']} words, distinct-4 {runs[-1]['distinct4']}, "
                  f"{runs[-1]['ending']}, {seconds:.0f} s", file=sys.stderr, flush=True)
        result["templates"][template] = {**_summary(runs), "runs": runs}
    return result


def bench_buckets(args) -> dict:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    engine = _engine()
    result = {"per_bucket": args.per_bucket, "buckets": args.buckets or "all", "backend": args.base_url or "embedded", "templates": {}}
    for template in args.templates:
        _register(engine, template, template=template, base_url=args.base_url, model=args.model)
        per_bucket = {}
        for name, low, high in BUCKETS:
            if args.buckets and name not in args.buckets:
                continue
            chosen = [r for r in rows if low <= r["length"] < high][: args.per_bucket]
            runs = []
            for index, item in enumerate(chosen):
                row, seconds = _generate(engine, template, item["prompt"], target=item["length"], seed=args.seed + index)
                runs.append(_measure(row, item["length"], seconds))
                print(f"  {template} {name}: target {item['length']}, {row.answer_words} words, distinct-4 "
                      f"{runs[-1]['distinct4']}, {runs[-1]['ending']}, {seconds:.0f} s", file=sys.stderr, flush=True)
            per_bucket[name] = {**_summary(runs), "runs": runs}
        result["templates"][template] = per_bucket
    return result


def bench_continuation(args) -> dict:
    """The same request (target T, seed s) once straight through, once cut near half and continued."""
    import asyncio
    from contextlib import aclosing

    from generation.continuation import continue_and_store
    from storage.engine import session_scope
    from storage.generations import get_generation

    engine = _engine()
    _register(engine, "m", template=args.template, base_url=args.base_url, model=args.model)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("templates", "buckets", "continuation"))
    parser.add_argument("--base-url", help="a vLLM server (default: the embedded model)")
    parser.add_argument("--model", default="smollm2-135m", help="served model name (with --base-url)")
    parser.add_argument("--templates", nargs="+", default=["think", "direct", "plan"])
    parser.add_argument("--template", default="direct", help="continuation: the template")
    parser.add_argument("--target", type=int, default=600)
    parser.add_argument("--prompts", type=int, default=2, help="templates: prompts per template (at most 3)")
    parser.add_argument("--per-bucket", type=int, default=1)
    parser.add_argument("--buckets", nargs="+", choices=[b[0] for b in BUCKETS], help="buckets to run (default: all)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    started = time.monotonic()
    result = {"templates": bench_templates, "buckets": bench_buckets, "continuation": bench_continuation}[args.part](args)
    result["wall_s"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"long_{args.part}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2, ensure_ascii=False)[:6000])
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
