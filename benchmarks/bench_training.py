"""Training benchmarks: exporting a million votes, and seconds per step / peak memory of the trainers.

    .venv/bin/python benchmarks/bench_training.py export [--votes 1000000] [--db URL] [--profile N]
    .venv/bin/python benchmarks/bench_training.py steps [--kinds reward,dpo,grpo] [--steps 3]
    .venv/bin/python benchmarks/bench_training.py long [--tokens 2048,4096,8192] [--kinds reward,dpo] [--memory-gb 18]
                                                       [--activation-checkpointing]

``export`` fills a fresh database (SQLite in a temporary folder unless ``--db``) with battles and
votes in bulk (not timed), then times ``export_preferences`` to a DPO parquet file: wall and CPU
seconds of this process (on PostgreSQL the server's work is in the wall time only), the 1-minute
load average before and after, and apart, the first import of numpy, pandas and pyarrow. ``steps`` runs
``lwz train KIND`` on the bundled model in a subprocess per kind and reports TRL's seconds per
step (model loading and DPO's reference pass excluded) and the process's peak resident memory.
``long`` trains one step (batch 1) of each kind on one pair whose chosen and rejected texts are
each about N tokens, with ``max_length`` at its default (the model's context), and reports TRL's
seconds for the step and the peak resident memory. Each run's address space is capped at
``--memory-gb`` so a length that does not fit fails alone instead of taking the machine down.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = ("harbor light keeper storm evening stone window river garden winter letter road market "
         "silver morning quiet paper candle forest bridge station music table summer north").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def fill(engine, *, votes: int, votes_per_battle: int, generations: int, answer_words: int, seed: int) -> dict:
    """Bulk-insert users, models, prompts, generations, battles and votes. Returns the counts."""
    import sqlalchemy as sa

    from storage.engine import session_scope
    from storage.models import Battle, Generation, ModelEntry, Prompt, User, Vote, utcnow

    rng = random.Random(seed)
    battles = votes // votes_per_battle
    prompts = max(1, generations // 8)
    now = utcnow()
    with session_scope(engine) as session:
        session.execute(sa.insert(User), [{"name": f"ann{i}", "role": "annotator", "password_hash": "",
                                           "flagged": i % 50 == 0, "created_at": now} for i in range(votes_per_battle * 4)])
        session.execute(sa.insert(ModelEntry), [{"name": f"m{i}", "backend": "local", "template": "direct",
                                                 "sampling": {}, "created_at": now} for i in range(4)])
        session.execute(sa.insert(Prompt), [{"text": f"Write about {i}.", "target_words": 100, "language": "en",
                                             "content_hash": f"h{i}", "created_at": now} for i in range(prompts)])
        session.execute(sa.insert(Generation), [
            {"prompt_id": 1 + i % prompts, "model_id": 1 + i % 4, "think": "", "answer": _text(rng, answer_words),
             "params": {}, "status": "complete", "think_words": 0, "answer_words": answer_words, "in_pool": True,
             "extra": {}, "created_at": now, "updated_at": now} for i in range(generations)])
        for start in range(0, battles, 50_000):
            rows = []
            for b in range(start, min(battles, start + 50_000)):
                left = rng.randrange(generations)
                right = (left + prompts * (1 + rng.randrange(3))) % generations
                rows.append({"prompt_id": 1 + left % prompts, "left_generation_id": left + 1,
                             "right_generation_id": right + 1, "mode": "pool", "extra": {}, "created_at": now})
            session.execute(sa.insert(Battle), rows)
    choices = ("left", "left", "right", "right", "tie", "both_bad")
    with session_scope(engine) as session:
        for start in range(0, battles, 20_000):
            rows = []
            for b in range(start, min(battles, start + 20_000)):
                lean = rng.choice(("left", "right"))
                for k in range(votes_per_battle):
                    winner = lean if rng.random() < 0.6 else rng.choice(choices)
                    rows.append({"battle_id": b + 1, "annotator_id": 1 + (b + k) % (votes_per_battle * 4),
                                 "winner": winner, "criteria": {}, "flags": [], "flagged": rng.random() < 0.02,
                                 "created_at": now})
            session.execute(sa.insert(Vote), rows)
    return {"votes": battles * votes_per_battle, "battles": battles, "generations": generations,
            "answer_words": answer_words}


def bench_export(args: argparse.Namespace) -> dict:
    import os

    from storage.engine import make_engine, session_scope, upgrade

    started = time.perf_counter()  # the first import, which a fresh ``lwz export`` pays once, is timed apart
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from training.preferences import PreferenceFilters, export_preferences

    import_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(args.db or f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        started = time.perf_counter()
        counts = fill(engine, votes=args.votes, votes_per_battle=args.votes_per_battle,
                      generations=args.generations, answer_words=args.answer_words, seed=args.seed)
        fill_s = time.perf_counter() - started
        out = Path(tmp) / "prefs.parquet"
        load_before = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        with _profiled(args.profile), session_scope(engine) as session:
            report = export_preferences(session, out=out, fmt="dpo", filters=PreferenceFilters())
        export_s, export_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        size_mb = out.stat().st_size / 1e6
        engine.dispose()
    return {"bench": "export", **counts, "fill_s": round(fill_s, 1), "import_s": round(import_s, 2),
            "export_s": round(export_s, 2), "export_cpu_s": round(export_cpu_s, 2),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "rows": report["rows"], "dropped_ties": report.get("dropped_ties"),
            "dropped_both_bad": report.get("dropped_both_bad"), "parquet_mb": round(size_mb, 1),
            "db": "postgresql" if args.db and args.db.startswith("postgres") else "sqlite"}


@contextlib.contextmanager
def _profiled(top: int):
    """Profile the block in CPU seconds and print its ``top`` costliest calls to stderr (0: no profile)."""
    if not top:
        yield
        return
    import cProfile
    import pstats

    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(top)


def _training_files(folder: Path) -> dict[str, Path]:
    """A small preference file and prompt file for the step benchmark (short texts, like the tests)."""
    import pandas as pd

    rng = random.Random(0)
    prompts = [f"Describe {w} in about 40 words." for w in WORDS[:16]]
    prefs = pd.DataFrame({"prompt": prompts, "chosen": [_text(rng, 60) for _ in prompts],
                          "rejected": [_text(rng, 60) for _ in prompts], "margin": 0.5})
    grpo = pd.DataFrame({"prompt": prompts, "target_words": 40, "min_words": 32, "max_words": 48})
    files = {"prefs": folder / "prefs.parquet", "prompts": folder / "prompts.parquet"}
    prefs.to_parquet(files["prefs"])
    grpo.to_parquet(files["prompts"])
    return files


def bench_steps(args: argparse.Namespace) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        files = _training_files(Path(tmp))
        for kind in args.kinds.split(","):
            data = files["prompts"] if kind == "grpo" else files["prefs"]
            command = [str(REPO / ".venv" / "bin" / "lwz"), "--db", f"sqlite:///{tmp}/steps.db", "train", kind,
                       "--base", "smollm2-135m", "--data", str(data), "--out", f"{tmp}/{kind}",
                       "--max-steps", str(args.steps), "--batch-size", "4" if kind == "grpo" else "2", "--json"]
            if kind == "grpo":
                command += ["--num-generations", "4", "--max-completion-length", "32"]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                results.append({"bench": f"steps-{kind}", "error": done.stderr.strip().splitlines()[-1:]})
                continue
            summary = json.loads(done.stdout)
            metrics = summary["metrics"]
            runtime = metrics["final"].get("train_runtime")
            results.append({"bench": f"steps-{kind}", "steps": metrics["steps"],
                            "s_per_step": round(runtime / metrics["steps"], 2) if runtime else None,
                            "peak_rss_mb": metrics["peak_rss_mb"], "wall_s": round(wall, 1),
                            "batch": 4 if kind == "grpo" else 2})
    return results


def bench_long(args: argparse.Namespace) -> list[dict]:
    import resource

    import pandas as pd

    limit = int(args.memory_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        extra = "activation_checkpointing: true\n" if args.activation_checkpointing else ""
        (Path(tmp) / "nosave.yaml").write_text("save_strategy: 'no'\n" + extra)
        for tokens in (int(t) for t in args.tokens.split(",")):
            # The bundled tokenizer gives one token per word of this vocabulary (checked: 2,000 words, 2,002 tokens);
            # 100 tokens are left for the chat template and the prompt, so 8,192 still fits the context.
            words = tokens - 100
            chosen = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(words)) + "."
            rejected = " ".join(WORDS[(i * 11) % len(WORDS)] for i in range(words)) + "."
            data = Path(tmp) / f"long{tokens}.parquet"
            pd.DataFrame([{"prompt": "Write at length about a harbor.", "chosen": chosen, "rejected": rejected}]).to_parquet(data)
            for kind in args.kinds.split(","):
                command = [str(REPO / ".venv" / "bin" / "lwz"), "--db", f"sqlite:///{tmp}/long.db", "train", kind,
                           "--base", "smollm2-135m", "--data", str(data), "--out", f"{tmp}/{kind}{tokens}",
                           "--max-steps", "1", "--batch-size", "1", "--template", "none",
                           "--config", f"{tmp}/nosave.yaml", "--json"]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, preexec_fn=cap)
                wall = time.perf_counter() - started
                row = {"bench": f"long-{kind}", "tokens": tokens, "wall_s": round(wall, 1), "memory_cap_gb": args.memory_gb,
                       "activation_checkpointing": args.activation_checkpointing}
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
                    results.append({**row, "error": tail[0][:200]})
                    print(json.dumps(results[-1]), flush=True)
                    continue
                metrics = json.loads(done.stdout)["metrics"]
                results.append({**row, "max_length": metrics["lengths"]["max_length"],
                                "kept": metrics["lengths"]["kept"],
                                "s_per_step": metrics["final"].get("train_runtime"),
                                "peak_rss_mb": metrics["peak_rss_mb"]})
                print(json.dumps(results[-1]), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    p = sub.add_parser("export")
    p.add_argument("--votes", type=int, default=1_000_000)
    p.add_argument("--votes-per-battle", type=int, default=5)
    p.add_argument("--generations", type=int, default=4000)
    p.add_argument("--answer-words", type=int, default=150)
    p.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="print the N costliest calls of the export (cProfile, CPU seconds) to stderr")
    p = sub.add_parser("steps")
    p.add_argument("--kinds", default="reward,dpo,grpo")
    p.add_argument("--steps", type=int, default=3)
    p = sub.add_parser("long")
    p.add_argument("--tokens", default="2048,4096,8192")
    p.add_argument("--kinds", default="reward,dpo")
    p.add_argument("--memory-gb", type=float, default=18.0)
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute activations in the backward pass (less memory, more time)")
    args = parser.parse_args()
    if args.bench == "long":
        bench_long(args)  # prints each row as it finishes
        return 0
    results = [bench_export(args)] if args.bench == "export" else bench_steps(args)
    for result in results:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
