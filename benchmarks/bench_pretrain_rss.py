"""Continual pretraining's memory against corpus size: peak RSS of `lwz train pretrain` on a generated
100 MB and a 1 GB JSON-lines corpus, a couple of steps at a tiny sequence length.

    python benchmarks/bench_pretrain_rss.py                       # writes benchmarks/results/pretrain_rss.json
    python benchmarks/bench_pretrain_rss.py --sizes-mb 100 1000 --steps 2 --max-length 32

Each size is a fresh `lwz train pretrain` process (the bundled model, `--max-steps`, batch 1); its peak
resident set is the kernel's `ru_maxrss` for that process, as the run records it (`metrics.peak_rss_mb`). The
corpus is generated once per size into `--workdir` (deleted afterwards unless `--keep`): documents of
about 1 KB drawn with a fixed seed from a small vocabulary. A streamed corpus keeps the peak flat; one
read whole would add about its size. The machine is shared: the load (`uptime`) before and after each
run is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "pretrain_rss.json"
VOCABULARY = ("harbor light keeper storm evening stone window river garden winter letter road market silver "
              "lamp tide gull rope island bell fog lantern memory silence brother salt glass wind boat night").split()


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def write_corpus(path: Path, megabytes: int, *, seed: int = 0) -> dict:
    """JSON lines of ~1 KB documents until the file holds ``megabytes`` MB."""
    rng = random.Random(seed)
    pool = [json.dumps({"text": " ".join(rng.choice(VOCABULARY) for _ in range(170))}) + "\n" for _ in range(2000)]
    target, written, documents = megabytes * 1_000_000, 0, 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            line = pool[rng.randrange(len(pool))]
            handle.write(line)
            written += len(line)
            documents += 1
    return {"bytes": path.stat().st_size, "documents": documents}


def run_once(corpus: Path, workdir: Path, *, steps: int, max_length: int) -> dict:
    out, db = workdir / f"run-{corpus.stem}", workdir / f"{corpus.stem}.db"
    command = [sys.executable, "-m", "lwz_cli.main", "--db", f"sqlite:///{db}", "train", "pretrain",
               "--base", "smollm2-135m", "--data", str(corpus), "--out", str(out), "--max-steps", str(steps),
               "--max-length", str(max_length), "--batch-size", "1", "--save-steps", "100000", "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    before, started = load(), time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"lwz train pretrain failed on {corpus}:\n{stderr[-2000:]}")
    summary = json.loads(stdout)
    return {"seconds": round(seconds, 1), "peak_rss_mb_recorded_by_run": summary["metrics"]["peak_rss_mb"],
            "steps": summary["metrics"]["steps"], "tokens_seen": summary["metrics"]["tokens"]["seen"],
            "documents_checked": summary["metrics"]["data"]["documents"], "load_before": before, "load_after": load(),
            "command": " ".join(command[1:]).replace(str(workdir), "WORKDIR")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--workdir", help="where the corpora and runs go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the corpora and runs")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="lwz-pretrain-rss-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in args.sizes_mb:
            corpus = workdir / f"corpus_{size}mb.jsonl"
            made = write_corpus(corpus, size)
            row = {"corpus_mb": size, **made, **run_once(corpus, workdir, steps=args.steps, max_length=args.max_length)}
            print(json.dumps(row), flush=True)
            rows.append(row)
            corpus.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    peaks = [row["peak_rss_mb_recorded_by_run"] for row in rows]
    result = {
        "benchmark": "bench_pretrain_rss", "what": "peak RSS of lwz train pretrain against corpus size (streamed)",
        "sizes_fixed_before_the_run": {"sizes_mb": args.sizes_mb, "steps": args.steps, "max_length": args.max_length,
                                       "batch_size": 1},
        "runs": rows,
        "peak_rss_growth_mb": round(peaks[-1] - peaks[0], 1) if len(peaks) > 1 else None,
        "corpus_growth_mb": args.sizes_mb[-1] - args.sizes_mb[0] if len(args.sizes_mb) > 1 else None,
        "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}: peak RSS {peaks} MB for {args.sizes_mb} MB corpora")


if __name__ == "__main__":
    main()
