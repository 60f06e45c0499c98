"""Real TRL runs on the bundled model (CPU): reward, GRPO and an interrupted DPO run.

Each run is a step or two on tiny data: these tests check plumbing (recording, counting,
registration, interruption), not learning; the loop test checks learning.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from storage.catalog import add_model, get_model, get_or_add_prompt
from storage.engine import session_scope
from storage.models import TrainingRun
from tests.conftest import default_sigint
from training.options import TrainOptions
from training.runner import run_training

REPO = Path(__file__).resolve().parents[2]


def _prefs(path: Path, *, long_rows: int = 0) -> Path:
    rows = [{"prompt": f"Describe colour number {i}.", "chosen": f"A calm and clear colour {i}.",
             "rejected": f"colour colour colour {i} colour", "margin": 0.5} for i in range(4)]
    rows += [{"prompt": "Describe a storm.", "chosen": "wind " * 200, "rejected": "rain " * 200, "margin": 1.0}] * long_rows
    pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.mark.slow
def test_reward_run_counts_dropped_pairs_and_scores_as_quality_reward(sqlite_engine, tmp_path):
    from training.rewards import QualityReward

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
    options = TrainOptions(kind="reward", base="smollm2-135m", data=str(_prefs(tmp_path / "p.parquet", long_rows=1)),
                           out=str(tmp_path / "rm"), max_steps=1, max_length=96, batch_size=2)
    summary = run_training(sqlite_engine, options, log=lambda line: None)
    lengths = summary["metrics"]["lengths"]
    assert lengths["given"] == 5 and lengths["dropped_too_long"] == 1 and lengths["kept"] == 4
    with session_scope(sqlite_engine) as session:
        run = session.get(TrainingRun, summary["run_id"])
        assert run.status == "complete" and run.dataset_fingerprint == summary["dataset_fingerprint"]
        assert run.config["max_length"] == 96 and run.metrics["lengths"]["dropped_too_long"] == 1
    quality = QualityReward(str(tmp_path / "rm"), max_length=72, batch_size=2)
    scores = quality(["A calm and clear colour.", "short", "word " * 120],
                     prompts=[[{"role": "user", "content": "Describe a colour."}]] * 3)
    assert all(isinstance(score, float) for score in scores)  # the long one scored on its first 72 tokens, never None
    assert quality.stats == {"scored": 3, "truncated": 1}


@pytest.mark.slow
def test_checkpoints_every_n_steps_and_resume(sqlite_engine, tmp_path):
    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
    data, out = str(_prefs(tmp_path / "p.parquet")), str(tmp_path / "rm")
    first = run_training(sqlite_engine, TrainOptions(kind="reward", base="smollm2-135m", data=data, out=out,
                                                     max_steps=1, batch_size=2, save_steps=1, max_length=96),
                         log=lambda line: None)
    lines: list[str] = []
    second = run_training(sqlite_engine, TrainOptions(kind="reward", base="smollm2-135m", data=data, out=out,
                                                      max_steps=2, batch_size=2, save_steps=1, max_length=96,
                                                      resume=True), log=lines.append)
    assert any("resuming from" in line and line.endswith("checkpoint-1") for line in lines), lines
    with session_scope(sqlite_engine) as session:
        one, two = session.get(TrainingRun, first["run_id"]), session.get(TrainingRun, second["run_id"])
        assert one.last_saved_step == 1 and two.last_saved_step == 2
        assert two.config["resumed_from"].endswith("checkpoint-1")
    assert second["metrics"]["steps"] == 2 and (tmp_path / "rm" / "checkpoint-2").is_dir()


@pytest.mark.slow
def test_grpo_step_from_db_prompts_registers_child(sqlite_engine, tmp_path):
    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
        for topic in ("the sea", "a lamp"):
            get_or_add_prompt(session, text=f"In about 10 words, describe {topic}.", target_words=10)
        get_or_add_prompt(session, text="Describe anything.")  # no target: left out, and counted
    options = TrainOptions(kind="grpo", base="smollm2-135m", from_db=True, out=str(tmp_path / "grpo"), max_steps=1,
                           batch_size=2, num_generations=2, max_completion_length=12, register="smollm2-grpo",
                           gate_max_tokens=64)
    summary = run_training(sqlite_engine, options, log=lambda line: None)
    metrics = summary["metrics"]
    assert metrics["data"]["dropped_no_target"] == 1 and metrics["data"]["kept"] == 2
    assert "truncated_completions" in metrics["lengths"]
    assert set(metrics["rewards"]) == {"length", "format", "anti_hacking"}, "each reward's mean, on its own"
    assert all(isinstance(r["mean"], float) for r in metrics["rewards"].values())
    assert "zero_advantage_steps" in metrics
    with session_scope(sqlite_engine) as session:
        child, parent = get_model(session, name="smollm2-grpo"), get_model(session, name="smollm2-135m")
        assert child.parent_id == parent.id and child.backend == "local"
        assert Path(child.path) == (tmp_path / "grpo").resolve() and (Path(child.path) / "config.json").is_file()
        assert session.get(TrainingRun, summary["run_id"]).model_id == child.id


@pytest.mark.slow
def test_interrupted_run_is_failed_with_partial_checkpoint(sqlite_url, tmp_path):
    from storage.engine import make_engine

    data = _prefs(tmp_path / "p.parquet")
    out = tmp_path / "dpo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lwz_cli.main", "--db", sqlite_url, "train", "dpo", "--base", "smollm2-135m",
               "--data", str(data), "--out", str(out), "--max-steps", "40", "--batch-size", "1", "--max-length", "64"]
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    lines = []
    try:
        deadline = time.monotonic() + 600
        for line in process.stderr:
            lines.append(line)
            if line.startswith("[lwz train] step 1/"):
                process.send_signal(signal.SIGINT)
                break
            assert time.monotonic() < deadline, "".join(lines[-20:])
        rest = process.communicate(timeout=300)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, "".join(lines[-20:]) + rest
    assert "lwz: interrupted" in rest and "partial checkpoint" in rest
    engine = make_engine(sqlite_url)
    with session_scope(engine) as session:
        (run,) = session.query(TrainingRun).all()
        assert run.status == "failed" and run.metrics["error"] == "interrupted" and run.finished_at is not None
        (partial,) = run.metrics["checkpoints"]
    assert Path(partial).name.startswith("partial-step-") and (Path(partial) / "config.json").is_file()
    engine.dispose()



@pytest.mark.slow
def test_kto_step_from_db_uses_both_bad_battles(sqlite_engine, tmp_path):
    from tests.training.arena_data import seed_battles

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
        seed_battles(session, [["left"], ["both_bad", "both_bad"], ["tie"]])
    options = TrainOptions(kind="kto", base="smollm2-135m", from_db=True, out=str(tmp_path / "kto"), max_steps=1,
                           batch_size=2, template="none", config={"save_strategy": "no"})
    summary = run_training(sqlite_engine, options, log=lambda line: None)
    data = summary["metrics"]["data"]
    assert data["kept"] == 4 and data["undesirable"] == 3, data  # left/right of battle 1, both texts of battle 2
    assert data["dropped_ties"] == 1 and summary["metrics"]["lengths"]["max_length"] == 8192
