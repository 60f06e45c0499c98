"""App CPU per 1,000 words at *every* 1,000 words of a committed long browser run, and its spread.

``bench_long.py browser`` samples the app's CPU time against the words on the page about once a
second and stores the samples in its results file, but reports only three windows (around 1k, the
middle and the end). A claim that the cost "stays flat" needs every window: this reads the
samples of each ``benchmarks/results/long_browser_*.json`` that has them, measures the window
ending at each 1,000 words with the same rule as the benchmark (:func:`bench_long_browser._window`), and
writes ``benchmarks/results/long_browser_per_1k.json``: per run, the seconds of app CPU per
1,000 words at each 1,000 words, their minimum, maximum and max/min ratio. It runs nothing else.

    .venv/bin/python benchmarks/per_1k_spread.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_long_browser import _window  # noqa: E402  (the benchmark's own window rule, one copy)

RESULTS = HERE / "results"
OUT = RESULTS / "long_browser_per_1k.json"


def spread(samples: list[list]) -> dict:
    """CPU seconds per 1,000 words for the window ending at each full 1,000 words, with min, max, max/min."""
    last = max(s[1] for s in samples)
    per_1k = {}
    for at in range(1000, last - last % 1000 + 1, 1000):
        window = _window([tuple(s) for s in samples], at)
        if window is not None:
            per_1k[f"{at // 1000}k"] = window["cpu_s_per_1k_words"]
    values = list(per_1k.values())
    return {"words": last, "cpu_s_per_1k_words_at": per_1k, "min": min(values), "max": max(values),
            "max_over_min": round(max(values) / min(values), 2)}


def main() -> int:
    runs = {}
    for path in sorted(RESULTS.glob("long_browser_*.json")):
        if path == OUT:
            continue
        result = json.loads(path.read_text())
        if len(result.get("samples") or []) > 1:
            runs[path.name] = {"template": result.get("template"), "scripted_words_per_s": result.get("scripted_words_per_s"),
                               **spread(result["samples"])}
    OUT.write_text(json.dumps({"command": "benchmarks/per_1k_spread.py", "runs": runs}, indent=2) + "\n")
    for name, run in runs.items():
        print(f"{name}: app CPU per 1,000 words {run['min']:.2f}-{run['max']:.2f} s "
              f"(max/min {run['max_over_min']}) over {len(run['cpu_s_per_1k_words_at'])} windows")
    print(f"wrote {OUT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
