"""The whole loop on CPU: a battle pool, simulated annotators with a hidden preference, export,
a few DPO steps, registration, and a battle between the new model and its parent.

The hidden preference: an answer closer to the prompt's target length (in words), with less
repetition, wins. The prompts ask for short texts (target 12 words) and answers are capped at
48 tokens, so most samples overshoot and the preferred direction is "shorter, to the point".
"""

from __future__ import annotations

import random
import statistics
from concurrent.futures import ThreadPoolExecutor

import pytest

from evaluation.metrics import distinct_n
from generation.counting import count_words
from generation.request import GenerationRequest
from writing.store import generate_to_row as run_generation
from storage.votes import add_vote, create_battle
from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from storage.users import add_user

TARGET = 12
MAX_TOKENS = 48
TOPICS_TRAIN = ["the sea", "a red bicycle", "winter mornings", "a busy market", "an old library", "rain on a roof",
                "a mountain trail", "a cup of tea", "city lights", "a lost key", "the first snow", "a quiet garden",
                "a forest path", "a harbour at dawn", "a school bus", "an empty stadium"]
TOPICS_HELD_OUT = ["a paper boat", "a desert road", "a night train", "a small bakery", "a windmill", "a lighthouse"]
BATTLES_PER_TOPIC = 3
HELD_OUT_SEEDS = (1, 2, 3, 4)


def prompt_for(topic: str) -> str:
    return f"In about {TARGET} words, describe {topic}."


def hidden_cost(answer: str) -> float:
    """Lower is better: relative distance to the target length plus the share of repeated 3-grams."""
    repeated = 1.0 - distinct_n(answer, 3) if count_words(answer) >= 4 else 0.0
    return abs(count_words(answer) - TARGET) / TARGET + repeated


def simulated_vote(left: str, right: str, rng: random.Random, *, noise: float = 0.1) -> str:
    """An annotator who prefers the lower hidden cost, and votes at random 10% of the time."""
    if rng.random() < noise:
        return rng.choice(["left", "right"])
    a, b = hidden_cost(left), hidden_cost(right)
    return "tie" if abs(a - b) < 1e-9 else ("left" if a < b else "right")


def generate(engine, model: str, topic: str, seed: int):
    request = GenerationRequest(prompt=prompt_for(topic), temperature=1.0, top_p=0.95, seed=seed, max_tokens=MAX_TOKENS)
    return run_generation(engine, model=model, request=request)


def parameters_differ(folder_a, folder_b) -> float:
    """The largest absolute difference between two checkpoints' tensors of the same name."""
    from safetensors.torch import load_file

    a, b = load_file(str(folder_a / "model.safetensors")), load_file(str(folder_b / "model.safetensors"))
    shared = sorted(set(a) & set(b))
    assert shared, "the checkpoints share no tensor names"
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in shared)


@pytest.mark.slow
def test_votes_to_dpo_to_arena(sqlite_engine, vllm_server, tmp_path, capsys):
    from generation.bundled import ensure_bundled_model
    from training.options import TrainOptions
    from training.preferences import PreferenceFilters, export_preferences
    from training.runner import run_training

    engine, rng = sqlite_engine, random.Random(7)
    with session_scope(engine) as session:
        add_model(session, name="smollm2-135m", backend="local", template="direct")
        # The parent served by vLLM writes the pool quickly; same weights as the local entry.
        add_model(session, name="parent-vllm", backend="openai", base_url=vllm_server.base_url,
                  model_id=vllm_server.model, template="direct", parent="smollm2-135m")
        annotators = [add_user(session, name=f"sim{i}", role="annotator").id for i in range(3)]
        for topic in TOPICS_TRAIN + TOPICS_HELD_OUT:
            get_or_add_prompt(session, text=prompt_for(topic), target_words=TARGET, category="loop")

    jobs = [(topic, 1000 + 10 * i + k) for i, topic in enumerate(TOPICS_TRAIN) for k in range(2 * BATTLES_PER_TOPIC)]
    with ThreadPoolExecutor(4) as pool:
        gens = list(pool.map(lambda job: generate(engine, "parent-vllm", *job), jobs))
    with session_scope(engine) as session:
        for left, right in zip(gens[::2], gens[1::2]):
            battle = create_battle(session, prompt_id=left.prompt_id, left_generation_id=left.id,
                                   right_generation_id=right.id)
            for annotator in annotators:
                add_vote(session, battle_id=battle.id, annotator_id=annotator,
                         winner=simulated_vote(left.answer, right.answer, rng))
        data = tmp_path / "prefs.parquet"
        exported = export_preferences(session, out=data, fmt="dpo", filters=PreferenceFilters(text="answer"))
    assert exported["rows"] >= 24, exported

    out = tmp_path / "dpo"
    options = TrainOptions(kind="dpo", base="smollm2-135m", data=str(data), out=str(out), max_steps=12,
                           batch_size=4, learning_rate=2e-5, max_length=256, register="smollm2-dpo", seed=0,
                           gate_max_tokens=64)
    summary = run_training(engine, options, log=lambda line: None)
    assert summary["registered"]["parent"] == "smollm2-135m"
    assert summary["metrics"]["gate"]["refused"] is False, summary["metrics"]["gate"]  # the child passed the gate
    assert "vllm serve" in summary["vllm_serve"]

    change = parameters_differ(ensure_bundled_model(), out)
    assert change > 1e-5, f"training left the parameters unchanged (max diff {change})"

    costs: dict[str, list[float]] = {"smollm2-dpo": [], "smollm2-135m": []}
    wins = {"smollm2-dpo": 0, "smollm2-135m": 0, "tie": 0}
    for i, topic in enumerate(TOPICS_HELD_OUT):
        for seed in HELD_OUT_SEEDS:
            new, old = (generate(engine, name, topic, 50 + 10 * i + seed) for name in ("smollm2-dpo", "smollm2-135m"))
            costs["smollm2-dpo"].append(hidden_cost(new.answer))
            costs["smollm2-135m"].append(hidden_cost(old.answer))
            with session_scope(engine) as session:
                battle = create_battle(session, prompt_id=new.prompt_id, left_generation_id=new.id,
                                       right_generation_id=old.id, mode="loop")
                verdict = simulated_vote(new.answer, old.answer, rng, noise=0.0)
                add_vote(session, battle_id=battle.id, annotator_id=annotators[0], winner=verdict)
            wins[{"left": "smollm2-dpo", "right": "smollm2-135m", "tie": "tie"}[verdict]] += 1
    new_mean, old_mean = statistics.mean(costs["smollm2-dpo"]), statistics.mean(costs["smollm2-135m"])
    diffs = [a - b for a, b in zip(costs["smollm2-dpo"], costs["smollm2-135m"])]
    spread = statistics.stdev(diffs) or 1e-9
    with capsys.disabled():
        print(f"\n[loop] held-out hidden cost: new {new_mean:.3f} vs parent {old_mean:.3f}; paired effect size "
              f"d={statistics.mean(diffs) / spread:.2f}; battles won new/parent/tie {wins}; max param change {change:.2e}")
    assert new_mean < old_mean, (costs, wins)
    assert wins["smollm2-dpo"] > wins["smollm2-135m"], wins
