"""GRPO seconds per step against completion length, on this CPU, with the bundled model.

    python benchmarks/bench_grpo_step_time.py                 # writes benchmarks/results/grpo_step_time.json
    python benchmarks/bench_grpo_step_time.py --tokens 256 1024 --steps 3 --group 2

For each length L, one `lwz train grpo` process (the bundled SmolLM2-135M in float32, the `direct`
template, rewards length and format, a group of `--group` completions, batch = one group, `--steps`
optimiser steps) with `generation_kwargs: {min_new_tokens: L}` so that every completion is exactly L
tokens (the model would otherwise stop early and the step would time something shorter). The figure is
the run's `seconds_per_step`: the wall time from loading the model through the last step (generation,
rewards, backward and save), divided by the steps, so the few seconds of loading are spread over them;
`train_runtime_per_step` is TRL's own time for the steps alone. TRL's logged `completions/mean_length`
shows the lengths were met. The machine is shared: `uptime`
before and after each run is recorded with it, and the sizes are fixed before the run and written
into the file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "grpo_step_time.json"
PROMPTS = ["Write a long letter to a lighthouse keeper about the winter storms.",
           "Write a long story about a market town that floods every spring."]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def run_once(work: Path, *, tokens: int, steps: int, group: int, threads: int) -> dict:
    prompts = work / "prompts.parquet"
    pd.DataFrame([{"prompt": p, "min_words": tokens // 2, "max_words": tokens} for p in PROMPTS]).to_parquet(prompts)
    config = work / f"grpo_{tokens}.yaml"
    config.write_text(json.dumps({"generation_kwargs": {"min_new_tokens": tokens}, "gradient_accumulation_steps": 1}))
    out, db = work / f"run-{tokens}", work / f"bench-{tokens}.db"
    command = [sys.executable, "-m", "lwz_cli.main", "--db", f"sqlite:///{db}", "train", "grpo", "--base", "smollm2-135m",
               "--data", str(prompts), "--out", str(out), "--template", "direct", "--rewards", "length,format",
               "--num-generations", str(group), "--batch-size", str(group), "--max-completion-length", str(tokens),
               "--max-steps", str(steps), "--save-steps", "100000", "--config", str(config), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    before, started = load(), time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"lwz train grpo failed at {tokens} tokens:\n{done.stderr[-2000:]}")
    metrics = json.loads(done.stdout)["metrics"]
    runtime = metrics["final"].get("train_runtime")
    return {"completion_tokens": tokens, "seconds_per_step": metrics["seconds_per_step"],
            "train_runtime_per_step": round(runtime / metrics["steps"], 1) if runtime else None,
            "steps": metrics["steps"], "completions_mean_length": metrics["final"].get("completions/mean_length"),
            "peak_rss_mb": metrics["peak_rss_mb"], "wall_seconds_with_loading": round(time.perf_counter() - started, 1),
            "load_before": before, "load_after": load(),
            "command": " ".join(command[1:]).replace(str(work), "WORK")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--group", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS); 1 on a shared machine")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lwz-grpo-steps-") as folder:
        for tokens in args.tokens:
            row = run_once(Path(folder), tokens=tokens, steps=args.steps, group=args.group, threads=args.threads)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"benchmark": "bench_grpo_step_time", "what": "GRPO seconds per step against completion tokens (CPU)",
              "sizes_fixed_before_the_run": {"tokens": args.tokens, "steps": args.steps, "group": args.group,
                                             "batch": args.group, "threads": args.threads, "model": "smollm2-135m",
                                             "dtype": "float32"},
              "runs": rows, "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
