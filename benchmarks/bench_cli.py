"""How fast ``lwz --help`` answers, in a fresh process each time (goal: under a second).

    .venv/bin/python benchmarks/bench_cli.py [--runs 10]

Prints the median and the slowest of ``--runs`` runs, and the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

LWZ = Path(sys.executable).with_name("lwz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        subprocess.run([str(LWZ), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    print(json.dumps({"command": "lwz --help", "runs": args.runs, "median_s": round(statistics.median(times), 3),
                      "max_s": round(max(times), 3), "load_average": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
