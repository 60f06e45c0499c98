"""Seed data shared by the storage, CLI and Data tab tests: small, explicit, no randomness."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from storage.catalog import add_model, get_or_add_prompt
from storage.engine import session_scope
from storage.generations import create_generation, finish_generation
from storage.users import add_user
from storage.votes import create_battle


@dataclass
class Seeded:
    """Ids of what :func:`seed_arena` created."""

    model_ids: dict[str, int] = field(default_factory=dict)
    prompt_ids: list[int] = field(default_factory=list)
    generation_ids: list[int] = field(default_factory=list)
    battle_ids: list[int] = field(default_factory=list)
    annotator_ids: list[int] = field(default_factory=list)


def seed_arena(engine: Engine, *, battles: int = 2, annotators: int = 2) -> Seeded:
    """Two models ('alpha' on the left, 'beta' on the right), one prompt per battle, complete generations.

    Left answers have 100 + i words, right answers 200 + i, so tests can check which side is which.
    """
    seeded = Seeded()
    with session_scope(engine) as session:
        alpha = add_model(session, name="alpha", backend="local")
        beta = add_model(session, name="beta", backend="openai", base_url="http://127.0.0.1:8100/v1", model_id="b")
        seeded.model_ids = {"alpha": alpha.id, "beta": beta.id}
        for i in range(annotators):
            seeded.annotator_ids.append(add_user(session, name=f"ann{i}", role="annotator", password="pw").id)
        for i in range(battles):
            prompt, _ = get_or_add_prompt(session, text=f"Write {i} words about tea.", category=f"cat{i % 2}",
                                          target_words=100 + i)
            seeded.prompt_ids.append(prompt.id)
            sides = []
            for model, words in ((alpha, 100 + i), (beta, 200 + i)):
                gen = create_generation(session, prompt_id=prompt.id, model_id=model.id, params={"seed": i})
                finish_generation(session, generation_id=gen.id, status="complete", answer="word " * words,
                                  answer_words=words, finish_reason="stop")
                sides.append(gen.id)
            seeded.generation_ids.extend(sides)
            battle = create_battle(session, prompt_id=prompt.id, left_generation_id=sides[0],
                                   right_generation_id=sides[1])
            seeded.battle_ids.append(battle.id)
    return seeded


def head_revision() -> str:
    """The newest migration's revision: migration files are numbered in order."""
    import storage

    versions = sorted((Path(storage.__file__).parent / "migrations" / "versions").glob("[0-9]*.py"))
    return versions[-1].name.split("_", 1)[0]
