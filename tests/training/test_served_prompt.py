"""Train on what is served: for a model served with its raw template (``--api completions``), the
token ids TRL trains on are the token ids of the prompt the server is sent."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from storage.catalog import add_model, get_model
from storage.engine import session_scope
from tests.helpers import ScriptedOpenAIServer
from training.options import TrainOptions

REQUEST = "Write a short letter to a lighthouse keeper about the winter storms."


@pytest.mark.slow
def test_training_prompt_ids_are_the_served_prompt_ids(sqlite_engine, tmp_path):
    from transformers import AutoTokenizer

    from generation.bundled import ensure_bundled_model
    from generation.service import GenerationRequest, collect_text
    from training.kinds import kind_of
    from training.prompts import messages_for
    from training.trainers import build_config, build_trainer

    bundled = str(ensure_bundled_model())
    reply = ["<think>a plan</think><answer>Dear keeper.</answer>"]
    with ScriptedOpenAIServer(lambda body: reply, finish="stop", model="lwz0") as server:
        url, bodies = server.base_url, server.bodies
        with session_scope(sqlite_engine) as session:
            add_model(session, name="lwz0", backend="openai", base_url=url, model_id="lwz0", template="think",
                      sampling={"api": "completions"})
            entry = get_model(session, name="lwz0")
            session.expunge(entry)
        asyncio.run(collect_text(entry, GenerationRequest(prompt=REQUEST, max_tokens=16), failure="serving"))
    served = [body for body in bodies if "prompt" in body][-1]["prompt"]
    assert "<|user|>: " + REQUEST in served  # the released model's raw template, not a chat template

    pd.DataFrame([{"prompt": REQUEST, "min_words": 50, "max_words": 90}]).to_parquet(tmp_path / "p.parquet")
    options = TrainOptions(kind="grpo", base=bundled, out=str(tmp_path / "out"), data=str(tmp_path / "p.parquet"),
                           template="think", api="completions", num_generations=2, batch_size=2,
                           max_completion_length=4, max_steps=1)
    options.check()
    rows, _, _ = kind_of("grpo").rows(options, None, template="think", api="completions")
    assert rows[0]["prompt"] == served and rows[0]["request"] == REQUEST
    trainer = build_trainer("grpo", model_path=bundled, config=build_config(options, gpu=False), rows=rows,
                            options=options, callbacks=[])
    trained_ids = trainer._tokenize_prompts([rows[0]["prompt"]])[0][0]
    # vLLM's /v1/completions tokenises the prompt with the tokenizer's own special tokens (add_special_tokens=True).
    served_ids = AutoTokenizer.from_pretrained(bundled)(served, add_special_tokens=True)["input_ids"]
    assert list(trained_ids) == list(served_ids)
    chat_ids = trainer._tokenize_prompts([messages_for(REQUEST, template="think")])[0][0]
    assert list(chat_ids) != list(served_ids)  # what the chat path (the old training prompt) would have trained on


def test_a_checkpoint_trained_on_the_raw_prompt_is_served_on_it(tmp_path):
    from training.checkpoints import vllm_serve_command

    assert vllm_serve_command(str(tmp_path), name="child", api="completions").endswith("--model-id child --api completions")
    assert vllm_serve_command(str(tmp_path), name="child", api="chat").endswith("--model-id child")
