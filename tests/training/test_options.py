"""Bad input for ``lwz train``: every mistake is one line, before any model loads or any run is recorded."""

from __future__ import annotations

import pytest

from storage.engine import session_scope
from core.errors import UserError
from storage.runs import list_runs
from tests.training.arena_data import seed_battles
from training.options import TrainOptions
from training.runner import run_training


@pytest.fixture
def prefs(sqlite_engine, tmp_path):
    from training.preferences import PreferenceFilters, export_preferences

    with session_scope(sqlite_engine) as session:
        seed_battles(session, [["left"], ["right"], ["tie"]])
        export_preferences(session, out=tmp_path / "prefs.parquet", filters=PreferenceFilters())
    return str(tmp_path / "prefs.parquet")


def _options(tmp_path, **overrides) -> TrainOptions:
    values = {"kind": "dpo", "base": "smollm2-135m", "out": str(tmp_path / "out")}
    values.update(overrides)
    return TrainOptions(**values)


@pytest.mark.parametrize("overrides, message", [
    ({}, "exactly one of --data FILE or --from-db"),
    ({"from_db": True, "data": "x.parquet"}, "exactly one of"),
    ({"from_db": True, "kind": "reward", "register": "rm"}, "reward model scores texts"),
    ({"from_db": True, "vllm_server": "http://h:8000"}, "--vllm-server only apply to grpo"),
    ({"from_db": True, "kind": "grpo", "rewards": ("length", "quality")}, "quality reward needs --reward-model"),
    ({"from_db": True, "kind": "grpo", "rewards": ("lenght",)}, "--rewards takes"),
    ({"from_db": True, "kind": "grpo", "max_length": 100}, "--max-completion-length"),
    ({"from_db": True, "kind": "grpo", "vllm_server": "h:8000"}, "http"),
    ({"from_db": True, "max_steps": 0}, "--max-steps must be at least 1"),
    ({"from_db": True, "max_steps": 5, "config": {"max_steps": 7}}, "contradicts max_steps: 7"),
    ({"data": "/no/such.parquet"}, "no such dataset file"),
])
def test_contradictory_options_rejected(tmp_path, overrides, message):
    with pytest.raises(UserError, match=message):
        _options(tmp_path, **overrides).check()


def test_non_empty_output_folder_rejected(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        _options(tmp_path, from_db=True).check()


@pytest.mark.parametrize("overrides, message", [
    ({"base": "/no/such/model"}, "no registered model of that name and no such folder"),
    ({"register": "a"}, "already registered"),
    ({"kind": "grpo"}, "grpo needs a prompt set"),
    ({"config": {"no_such_field": 1}}, "unknown DPOConfig field"),
    ({"kind": "grpo", "data": None, "from_db": True, "num_generations": 3, "batch_size": 4},
     "must be a multiple of num_generations"),
])
def test_bad_input_fails_before_a_run_is_recorded(sqlite_engine, prefs, tmp_path, overrides, message):
    options = _options(tmp_path, **{"data": prefs, **overrides})
    with pytest.raises(UserError, match=message):
        run_training(sqlite_engine, options, log=lambda line: None)
    with session_scope(sqlite_engine) as session:
        assert list_runs(session) == []
    assert not (tmp_path / "out").exists()


def test_empty_dataset_from_db_names_the_filters(sqlite_engine, tmp_path):
    from training.preferences import PreferenceFilters

    with session_scope(sqlite_engine) as session:
        seed_battles(session, [["left", "right"], ["both_bad"]])
    options = _options(tmp_path, from_db=True, filters=PreferenceFilters(min_votes=3))
    with pytest.raises(UserError, match="min votes 3.*dropped_min_votes=2"):
        run_training(sqlite_engine, options, log=lambda line: None)


def test_cli_bad_input_is_one_line(sqlite_url, tmp_path, capsys):
    from lwz_cli.main import main

    code = main(["--db", sqlite_url, "train", "dpo", "--base", str(tmp_path / "missing"), "--from-db",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no such folder" in err
    (tmp_path / "bad.yaml").write_text("- a list\n")
    code = main(["--db", sqlite_url, "train", "grpo", "--base", "smollm2-135m", "--from-db", "--out",
                 str(tmp_path / "o"), "--config", str(tmp_path / "bad.yaml")])
    assert code == 2 and "expected a mapping" in capsys.readouterr().err
