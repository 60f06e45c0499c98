"""Training at length: what the reward model learned is what it scores, and pairs past 2,048 tokens train.

The token test builds TRL's RewardTrainer (which tokenises its dataset on construction) and compares
its sequence with QualityReward's; the length test runs one real step of each trainer on the bundled
model, on a pair whose texts exceed 2,048 tokens (TRL's defaults would drop or cut them).
"""

from __future__ import annotations

import pandas as pd
import pytest

from storage.catalog import add_model
from storage.engine import session_scope
from storage.models import TrainingRun
from training.options import TrainOptions
from training.runner import run_training

REQUEST = "Write a short story about a lighthouse keeper who finds a letter in a bottle."
STORY = "<think>Plan: the storm, the bottle, the letter.</think>\n<answer>The storm broke at dawn.</answer>"


@pytest.mark.slow
@pytest.mark.parametrize("template", ["think", "none"])
def test_quality_reward_scores_the_sequence_the_reward_model_trained_on(tmp_path, template):
    from generation.bundled import ensure_bundled_model
    from training.data import preference_dataset
    from training.rewards import QualityReward
    from training.trainers import build_config, build_trainer

    folder = str(ensure_bundled_model())
    frame = pd.DataFrame([{"prompt": REQUEST, "chosen": STORY, "rejected": "No."}])
    rows, _ = preference_dataset(frame, template=template)
    options = TrainOptions(kind="reward", base=folder, data=None, from_db=True, out=str(tmp_path / "rm"), max_steps=1)
    config = build_config(options, gpu=False, context=8192)
    trainer = build_trainer("reward", model_path=folder, config=config, rows=rows, options=options, callbacks=[])
    trained = list(trainer.train_dataset["chosen_ids"][0])
    # The GRPO prompt reaches the reward as the policy's conversation; only its request counts.
    policy_prompt = [{"role": "system", "content": "any policy instructions"}, {"role": "user", "content": REQUEST}]
    quality = QualityReward(folder, template=template)
    from training.rewards import prompt_text

    assert quality.encode(prompt_text(policy_prompt), STORY) == trained
    assert quality.max_length == 8192, "the model's context, not a fixed 2,048"
    if template == "think":
        tokenizer = trainer.processing_class
        bare = tokenizer.apply_chat_template([{"role": "user", "content": REQUEST}, {"role": "assistant", "content": STORY}],
                                             tokenize=True, return_dict=True)["input_ids"]
        assert list(bare) != trained and len(trained) > len(bare) + 100, "the old [user, assistant] input differs"


def _long_pair(path, words: int = 2100) -> str:
    vocabulary = ("harbor light keeper storm evening stone window river garden winter letter road market silver "
                  "morning quiet paper candle forest bridge station music table summer north").split()
    chosen = " ".join(vocabulary[(i * 7) % len(vocabulary)] for i in range(words)) + "."
    rejected = " ".join(vocabulary[(i * 11) % len(vocabulary)] for i in range(words)) + "."
    pd.DataFrame([{"prompt": "Write at length about a harbor.", "chosen": chosen, "rejected": rejected,
                   "margin": 1.0}]).to_parquet(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_one_step_on_a_pair_past_2048_tokens(sqlite_engine, tmp_path, kind):
    from transformers import AutoTokenizer

    from generation.bundled import ensure_bundled_model

    with session_scope(sqlite_engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
    data = _long_pair(tmp_path / "long.parquet")
    tokenizer = AutoTokenizer.from_pretrained(str(ensure_bundled_model()))
    assert len(tokenizer(pd.read_parquet(data).loc[0, "chosen"])["input_ids"]) > 2048
    # One checkpoint (with its optimiser state) is enough to show the row records it: the reward run saves.
    saves = {} if kind == "reward" else {"save_strategy": "no"}
    options = TrainOptions(kind=kind, base="smollm2-135m", data=data, out=str(tmp_path / kind), max_steps=1,
                           batch_size=1, save_steps=1, template="none", config=saves)
    lines: list[str] = []
    summary = run_training(sqlite_engine, options, log=lines.append)
    lengths = summary["metrics"]["lengths"]
    assert lengths["max_length"] == 8192 and lengths["kept"] == 1, lengths
    assert not any(v for k, v in lengths.items() if k.startswith("dropped") or k == "truncated"), lengths
    assert summary["metrics"]["steps"] == 1
    assert any("nothing dropped or truncated (max_length=8192)" in line for line in lines), lines
    with session_scope(sqlite_engine) as session:
        run = session.get(TrainingRun, summary["run_id"])
        assert run.metrics["lengths"] == lengths
        assert run.last_saved_step == (1 if kind == "reward" else None)
    assert (tmp_path / kind / "checkpoint-1").is_dir() == (kind == "reward")
