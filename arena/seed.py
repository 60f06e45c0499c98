"""A pool of hand-made texts for demos, tests and the arena benchmark (no model is called).

``seed_pool`` registers models, prompts and one complete, pooled generation per model and
prompt, written from a fixed vocabulary with a seeded ``random.Random`` (so no text names a
model), then forms the battles. Real pools come from ``lwz battles fill`` and the Write tab.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from storage.engine import session_scope

_VOCABULARY = (
    "river stone lantern harbour winter garden letter journey mountain quiet morning village window "
    "bridge forest candle memory silver thunder meadow harvest compass island orchard shadow whisper "
    "the a of and in to with under across beyond slowly bright old new small wide gentle"
).split()


@dataclass(frozen=True)
class SeededPool:
    model_ids: dict[str, int]
    prompt_ids: list[int]
    generation_ids: list[int]
    battle_ids: list[int]


def hand_made_text(*, words: int, rng: random.Random) -> str:
    """``words`` words of calm prose-like filler in sentences of 8 to 14 words."""
    out: list[str] = []
    while len(out) < words:
        n = min(rng.randint(8, 14), words - len(out))
        sentence = [rng.choice(_VOCABULARY) for _ in range(n)]
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out += sentence
    return " ".join(out)


def seed_pool(
    engine: Engine,
    *,
    models: list[str],
    prompts: int,
    words: int = 120,
    seed: int = 0,
    author_id: int | None = None,
) -> SeededPool:
    """Add ``prompts`` prompts and one complete pooled answer per (model, prompt); form battles."""
    from storage.catalog import add_model, get_model, get_or_add_prompt
    from storage.generations import create_generation, finish_generation, set_in_pool
    from storage.models import GenerationStatus
    from arena.pool import form_battles

    rng = random.Random(seed)
    model_ids: dict[str, int] = {}
    prompt_ids: list[int] = []
    gen_ids: list[int] = []
    with session_scope(engine) as session:
        for name in models:
            entry = get_model(session, name=name) or add_model(session, name=name, backend="local", template="direct")
            model_ids[name] = entry.id
        for i in range(prompts):
            prompt, _ = get_or_add_prompt(
                session, text=f"Write a calm piece about the {rng.choice(_VOCABULARY)} (seed {seed}, #{i}).",
                category="seeded", target_words=words,
            )
            prompt_ids.append(prompt.id)
            for name in models:
                gen = create_generation(session, prompt_id=prompt.id, model_id=model_ids[name],
                                        params={"seed": seed}, author_id=author_id)
                answer = hand_made_text(words=words, rng=rng)
                finish_generation(session, generation_id=gen.id, status=GenerationStatus.complete.value, finish_reason="stop",
                                  answer=answer, think="Plan: open, develop, close.",
                                  answer_words=len(answer.split()), think_words=4)
                session.expire(gen)
                set_in_pool(session, generation_id=gen.id)
                gen_ids.append(gen.id)
        battles = form_battles(session, seed=seed)
    return SeededPool(model_ids=model_ids, prompt_ids=prompt_ids, generation_ids=gen_ids, battle_ids=battles)
