"""Several processes for real: ``accelerate launch --num_processes 2`` on the CPU runs one optimiser step
of reward, DPO and GRPO on the bundled model (gloo, two ranks), and each run is recorded once, saved once
and registered once, by rank 0.

accelerate's CPU launcher runs one process unless MPI is installed, so the two ranks are started with its
torchrun launcher (``--multi_gpu``); with ``use_cpu=True`` (every CPU config here) accelerate then sets
up its MULTI_CPU state over gloo. The same command with a DeepSpeed config runs on GPU hosts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from storage.catalog import add_model, list_models
from storage.engine import make_engine, session_scope, upgrade
from storage.models import TrainingRun

REPO = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _data(folder: Path) -> tuple[str, str]:
    prefs = folder / "prefs.parquet"
    pd.DataFrame([{"prompt": f"Describe colour number {i}.", "chosen": f"A calm and clear colour {i}.",
                   "rejected": f"colour colour colour {i} colour", "margin": 0.5} for i in range(4)]).to_parquet(prefs)
    prompts = folder / "prompts.parquet"
    pd.DataFrame([{"prompt": f"Write one line about the sea, number {i}.", "min_words": 2, "max_words": 6}
                  for i in range(2)]).to_parquet(prompts)
    return str(prefs), str(prompts)


def _launch(db: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_port()), "-m", "lwz_cli.main", "--db", db, "train", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)


@pytest.mark.slow
@pytest.mark.parametrize("kind, extra", [
    ("reward", ["--max-length", "96"]),
    ("dpo", ["--max-length", "96", "--register", "child-dpo", "--gate-max-tokens", "8"]),
    ("grpo", ["--num-generations", "2", "--max-completion-length", "4", "--register", "child-grpo",
              "--gate-max-tokens", "8"]),
])
def test_two_processes_train_one_step_and_record_save_register_once(sqlite_url, tmp_path, kind, extra):
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
    prefs, prompts = _data(tmp_path)
    out = tmp_path / "out"
    done = _launch(sqlite_url, kind, "--base", "smollm2-135m", "--data", prompts if kind == "grpo" else prefs,
                   "--out", str(out), "--max-steps", "1", "--batch-size", "1", *extra)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert output.count("[lwz train] saved the checkpoint to") == 1, output[-4000:]
    assert output.count("run 1 complete: 1 steps") == 1, output[-4000:]
    assert (out / "model.safetensors").is_file() and (out / "lwz_run.json").is_file()
    with session_scope(engine) as session:
        runs = list(session.exec(select(TrainingRun)))
        assert [(run.kind, run.status) for run in runs] == [(kind, "complete")]
        assert runs[0].metrics["steps"] == 1
        children = [entry.name for entry in list_models(session) if entry.name != "smollm2-135m"]
        assert children == ([f"child-{kind}"] if kind != "reward" else [])
    if kind == "grpo":
        assert runs[0].config["trl"]["generation_batch_size"] == 2  # two ranks x batch 1 hold one group of 2
    engine.dispose()
