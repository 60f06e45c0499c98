"""``lwz train grpo --recipe longwriter-zero``: the paper's settings, and one real step at toy size on CPU."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.errors import UserError
from training.options import TrainOptions

PAPER = {"num_generations": 32, "temperature": 0.8, "top_p": 1.0, "max_completion_length": 14_000, "epsilon": 0.2,
         "beta": 0.0, "loss_type": "grpo", "multi_objective_aggregation": "normalize_then_sum"}


def _reward_model_config(folder) -> str:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForSequenceClassification"]}))
    return str(folder)


def _prompts(path, n: int = 1) -> str:
    pd.DataFrame([{"prompt": f"Write one line about the sea, number {i}.", "min_words": 1, "max_words": 3}
                  for i in range(n)]).to_parquet(path)
    return str(path)


def test_the_recipe_is_the_papers_settings(tmp_path):
    from training.trainers import config_values

    options = TrainOptions(kind="grpo", base="smollm2-135m", out=str(tmp_path / "o"), data=_prompts(tmp_path / "p.parquet"),
                           recipe="longwriter-zero", reward_model=_reward_model_config(tmp_path / "rm"))
    options.check()
    assert options.rewards == ("length", "quality", "format") and options.combine == "paper"
    assert (options.template, options.api) == ("think", "completions")
    for gpu in (True, False):
        _, values = config_values(options, gpu=gpu)
        assert {key: values[key] for key in PAPER} == PAPER
        assert values["reward_weights"] == [1 / 3] * 3 and values["generation_batch_size"] % 32 == 0


def test_flags_and_the_yaml_sit_above_the_recipe(tmp_path):
    from training.trainers import config_values

    options = TrainOptions(kind="grpo", base="smollm2-135m", out=str(tmp_path / "o"), data=_prompts(tmp_path / "p.parquet"),
                           recipe="longwriter-zero", rewards=("length", "format"), template="direct", api="chat",
                           max_completion_length=64, config={"temperature": 1.0})
    options.check()
    assert options.rewards == ("length", "format") and (options.template, options.api) == ("direct", "chat")
    _, values = config_values(options, gpu=True)
    assert values["max_completion_length"] == 64 and values["temperature"] == 1.0 and values["num_generations"] == 32
    assert values["reward_weights"] == [0.5, 0.5]


@pytest.mark.parametrize("overrides, message", [
    ({"recipe": "longwriter-one"}, "unknown recipe 'longwriter-one': choose longwriter-zero"),
    ({"recipe": "longwriter-zero"}, "the quality reward needs --reward-model"),
    ({"recipe": "longwriter-zero", "kind": "dpo"}, "recipe 'longwriter-zero' is for lwz train grpo, not dpo"),
])
def test_recipe_mistakes_are_one_line(tmp_path, overrides, message):
    values = {"kind": "grpo", "base": "smollm2-135m", "out": str(tmp_path / "o"), "data": _prompts(tmp_path / "p.parquet"),
              **overrides}
    with pytest.raises(UserError, match=message):
        TrainOptions(**values).check()


def test_cli_takes_the_recipe(tmp_path):
    from lwz_cli.main import build_parser
    from lwz_cli.train import options_from_args

    args = build_parser().parse_args(["train", "grpo", "--base", "smollm2-135m", "--out", str(tmp_path / "o"),
                                      "--data", _prompts(tmp_path / "p.parquet"), "--recipe", "longwriter-zero",
                                      "--reward-model", _reward_model_config(tmp_path / "rm"), "--reward-device", "cpu"])
    options = options_from_args(args)
    assert options.recipe == "longwriter-zero" and options.rewards is None
    options.check()
    assert options.rewards == ("length", "quality", "format") and options.reward_device == "cpu"


@pytest.mark.slow
def test_one_real_step_of_the_recipe_at_toy_size(sqlite_engine, tmp_path):
    """Group 32, four completion tokens, the bundled model, its own reward model: one GRPO step."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from generation.bundled import ensure_bundled_model
    from storage.engine import session_scope
    from storage.models import TrainingRun
    from training.runner import run_training

    bundled = ensure_bundled_model()
    rm = tmp_path / "rm"
    model = AutoModelForSequenceClassification.from_pretrained(bundled, num_labels=1, dtype=torch.bfloat16)
    model.config.pad_token_id = model.config.eos_token_id
    model.save_pretrained(rm)
    AutoTokenizer.from_pretrained(bundled).save_pretrained(rm)
    lines: list[str] = []
    options = TrainOptions(kind="grpo", base=str(bundled), out=str(tmp_path / "out"), data=_prompts(tmp_path / "p.parquet"),
                           recipe="longwriter-zero", reward_model=str(rm), reward_device="cpu", max_steps=1,
                           max_completion_length=4, batch_size=8)
    summary = run_training(sqlite_engine, options, log=lines.append)
    metrics = summary["metrics"]
    assert metrics["steps"] == 1
    assert set(metrics["rewards"]) == {"length", "quality", "format"}
    with session_scope(sqlite_engine) as session:
        run = session.get(TrainingRun, summary["run_id"])
        trl = run.config["trl"]
        assert {key: trl[key] for key in PAPER if key != "max_completion_length"} == {
            key: value for key, value in PAPER.items() if key != "max_completion_length"}
        assert trl["max_completion_length"] == 4 and trl["generation_batch_size"] == 32
        assert run.config["api"] == "completions" and run.config["template"] == "think"
        assert run.config["rewards"] == ["length", "quality", "format"]
