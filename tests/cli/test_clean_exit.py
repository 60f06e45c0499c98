"""Clean exits: ``lwz generate`` on the embedded model, in a fresh process, exits 0 after its JSON.

A target stops the stream mid-generation, so the model's worker thread was still inside torch
when the interpreter shut down, and the process aborted ("terminate called without an active
exception", exit 134) after printing. Several runs, a tiny target each."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import lwz

pytestmark = pytest.mark.slow
RUNS = 3


def _lwz(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return lwz(*args, db=db_url, env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})


def test_generate_with_a_target_exits_0_after_valid_json_every_time(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'lwz.db'}"
    prepared = _lwz(db_url, "models", "prepare")
    assert prepared.returncode == 0, prepared.stderr
    for seed in range(RUNS):
        done = _lwz(db_url, "generate", "--model", "smollm2-135m", "--prompt", "Write about rain.",
                    "--target-words", "12", "--think-budget", "6", "--seed", str(seed), "--json")
        assert done.returncode == 0, f"run {seed}: exit {done.returncode}: {done.stderr[-500:]}"
        row = json.loads(done.stdout)
        assert row["status"] in ("complete", "truncated") and row["answer"].strip()
        assert "terminate called" not in done.stderr
