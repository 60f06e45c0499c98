"""Exported files in TRL's own trainer: what ``--layout trl`` rows become when TRL loads them.

TRL 1.16 tokenises plain-string rows raw (prompt + text + EOS, no chat template); only
conversational rows get the model's chat template. ``lwz train`` renders rows as conversations
itself; a file fed to TRL directly gets exactly what this test shows.
"""

from __future__ import annotations

import pytest

from storage.engine import session_scope
from tests.training.arena_data import seed_battles
from training.preferences import PreferenceFilters, export_preferences


@pytest.mark.slow
def test_trl_layout_is_tokenised_raw_and_openrlhf_layout_gets_the_chat_template(sqlite_engine, tmp_path):
    import trl
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from generation.bundled import ensure_bundled_model

    folder = str(ensure_bundled_model())
    with session_scope(sqlite_engine) as session:
        seed_battles(session, [["left"]])
        export_preferences(session, out=tmp_path / "plain.jsonl", fmt="reward", layout="trl", filters=PreferenceFilters())
        export_preferences(session, out=tmp_path / "chat.jsonl", fmt="reward", layout="openrlhf",
                           filters=PreferenceFilters())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = trl.RewardConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to=[],
                              activation_checkpointing=False, max_length=None)
    ids = {}
    for name in ("plain", "chat"):
        dataset = load_dataset("json", data_files=str(tmp_path / f"{name}.jsonl"), split="train")
        # openrlhf rows hold whole conversations in chosen/rejected: TRL's implicit-prompt form.
        dataset = dataset.select_columns(["prompt", "chosen", "rejected"] if name == "plain" else ["chosen", "rejected"])
        trainer = trl.RewardTrainer(model=folder, args=config, train_dataset=dataset, processing_class=tokenizer)
        ids[name] = list(trainer.train_dataset["chosen_ids"][0])
        row = dataset[0]
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    plain = load_dataset("json", data_files=str(tmp_path / "plain.jsonl"), split="train")[0]
    assert ids["plain"] == tokenizer(plain["prompt"] + plain["chosen"] + tokenizer.eos_token)["input_ids"]
    assert start not in ids["plain"], "plain strings get no chat template in TRL"
    assert ids["chat"] == list(tokenizer.apply_chat_template(row["chosen"], tokenize=True, return_dict=True)["input_ids"])
    assert start in ids["chat"]
