"""Bad input for ``lwz train``: every mistake is one line, before any model loads or any run is recorded."""

from __future__ import annotations

import pytest

from sqlmodel import select

from storage.engine import session_scope
from storage.models import TrainingRun
from core.errors import UserError
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
    ({"from_db": True, "save_steps": 0}, "--save-steps must be at least 1"),
    ({"from_db": True, "l_max": 900}, "--l-max only apply to grpo"),
    ({"from_db": True, "resume": True}, "--resume: no checkpoint-N folder"),
    ({"from_db": True, "kind": "kto", "register": "x", "vllm_server": "http://h"}, "only apply to grpo, not to a kto"),
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
    ({"kind": "grpo", "data": None, "from_db": True, "config": {"num_generations": 1}},
     "grpo needs num_generations >= 2"),
])
def test_bad_input_fails_before_a_run_is_recorded(sqlite_engine, prefs, tmp_path, overrides, message):
    options = _options(tmp_path, **{"data": prefs, **overrides})
    with pytest.raises(UserError, match=message):
        run_training(sqlite_engine, options, log=lambda line: None)
    with session_scope(sqlite_engine) as session:
        assert list(session.exec(select(TrainingRun).order_by(TrainingRun.id.desc()))) == []
    assert not (tmp_path / "out").exists()


def test_reward_model_that_is_not_sequence_classification_is_refused(tmp_path):
    import json

    folder = tmp_path / "lm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    options = _options(tmp_path, kind="grpo", from_db=True, rewards=("length", "quality"), reward_model=str(folder))
    with pytest.raises(UserError, match="not a sequence-classification model .architectures: LlamaForCausalLM"):
        options.check()


def test_train_flags_are_the_options_fields():
    import argparse
    import dataclasses

    from lwz_cli.train import add_option_flags

    from training.kinds import KINDS, takes

    for kind in KINDS:
        parser = argparse.ArgumentParser()
        add_option_flags(parser, kind)
        helps = {a.dest: a.help for a in parser._actions if a.dest != "help"}
        for f in dataclasses.fields(TrainOptions):
            applies = f.metadata.get("help") and takes(kind, f.name)
            assert (f.name in helps) == bool(applies), (kind, f.name)
            if applies:
                assert helps[f.name].startswith(f.metadata["help"]), (kind, f.name)


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


def test_a_registered_checkpoint_samples_as_its_parent(sqlite_engine, tmp_path):
    # Child and parent meet in the arena on equal terms: the child keeps the parent's repetition
    # penalty (the bundled model's 1.1), not the server endpoint of an openai-backend parent.
    from storage.catalog import add_model
    from storage.engine import session_scope
    from training.checkpoints import register_checkpoint

    with session_scope(sqlite_engine) as session:
        parent = add_model(session, name="base", backend="openai", base_url="http://h:8000/v1", model_id="base",
                           template="direct", sampling={"api": "completions", "repetition_penalty": 1.1})
        child = register_checkpoint(session, name="child", folder=str(tmp_path), parent=parent, template="direct")
        assert child.sampling == {"repetition_penalty": 1.1} and child.parent_id == parent.id
        orphan = register_checkpoint(session, name="orphan", folder=str(tmp_path), parent=None, template="think")
        assert orphan.sampling == {}


@pytest.mark.parametrize("group, batch, accumulation, generation_batch", [(32, 4, 1, 32), (3, 4, 1, 12), (8, 8, 2, 16)])
def test_any_group_trl_accepts_is_accepted(tmp_path, group, batch, accumulation, generation_batch):
    # TRL needs only the generation batch to hold whole groups, not each device's batch.
    from training.trainers import build_config

    options = _options(tmp_path, kind="grpo", from_db=True, num_generations=group, batch_size=batch,
                       config={"gradient_accumulation_steps": accumulation})
    options.check()
    config = build_config(options, gpu=False)
    assert config.num_generations == group and config.per_device_train_batch_size == batch
    assert config.generation_batch_size == generation_batch and generation_batch % group == 0


def test_a_gpu_grpo_run_without_a_config_gets_the_papers_rollouts(tmp_path):
    from training.kinds import PAPER_ROLLOUT
    from training.trainers import config_values

    options = _options(tmp_path, kind="grpo", from_db=True)
    options.check()
    _, values = config_values(options, gpu=True)
    assert {key: values[key] for key in PAPER_ROLLOUT} == PAPER_ROLLOUT
    assert values["num_generations"] == 32 and values["max_completion_length"] == 14_000


def test_one_map_from_flags_to_config_fields(tmp_path):
    # Every flag that names a TRL field reaches it, and contradicts a YAML value for it.
    from training.options import FLAG_FIELDS
    from training.trainers import build_config

    flags = {"max_steps": 3, "learning_rate": 2e-6, "seed": 7, "batch_size": 2, "save_steps": 9,
             "num_generations": 2, "max_completion_length": 16}
    options = _options(tmp_path, kind="grpo", from_db=True, **flags)
    options.check()
    config = build_config(options, gpu=False)
    assert {FLAG_FIELDS[flag]: getattr(config, FLAG_FIELDS[flag]) for flag in flags} == {
        FLAG_FIELDS[flag]: value for flag, value in flags.items()}
    for flag, value in flags.items():
        with pytest.raises(UserError, match=f"contradicts {FLAG_FIELDS[flag]}"):
            _options(tmp_path, kind="grpo", from_db=True, config={FLAG_FIELDS[flag]: value + 1},
                     **{flag: value}).check()
