"""Hand-made arena data for the training tests: models, prompts, generations, battles and votes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from storage.votes import create_battle
from storage.catalog import add_model, get_or_add_prompt
from storage.generations import create_generation, finish_generation
from storage.users import add_user
from tests.helpers import cast


def make_generation(session, *, prompt_id: int, model_id: int, answer: str, think: str = "") -> int:
    gen = create_generation(session, prompt_id=prompt_id, model_id=model_id, params={"seed": 1})
    finish_generation(session, generation_id=gen.id, status="complete", answer=answer, think=think,
                      answer_words=len(answer.split()))
    return gen.id


def seed_battles(session, verdicts: list[list[str]], *, flagged_users: tuple[int, ...] = ()) -> list[int]:
    """One battle per entry of ``verdicts``; entry k lists the votes (left/right/tie/both_bad) by annotators 0, 1, ...,
    cast through the arena's own vote function.

    Left is model "a" answering ``left answer i``; right is model "b" answering ``right answer i``.
    Annotators whose index is in ``flagged_users`` are flagged. Returns the battle ids.
    """
    a = add_model(session, name="a", backend="local")
    b = add_model(session, name="b", backend="local")
    n_users = max((len(v) for v in verdicts), default=0)
    users = [add_user(session, name=f"ann{i}", role="annotator") for i in range(n_users)]
    for i in flagged_users:
        users[i].flagged = True
        session.add(users[i])
    ids = []
    for i, votes in enumerate(verdicts):
        prompt, _ = get_or_add_prompt(session, text=f"Write about topic {i}.", target_words=100 + i, category="c")
        left = make_generation(session, prompt_id=prompt.id, model_id=a.id, answer=f"left answer {i}", think=f"plan {i}")
        right = make_generation(session, prompt_id=prompt.id, model_id=b.id, answer=f"right answer {i}")
        battle = create_battle(session, prompt_id=prompt.id, left_generation_id=left, right_generation_id=right)
        for user, winner in zip(users, votes):
            if winner:
                cast(session, battle_id=battle.id, annotator_id=user.id, winner=winner)
        ids.append(battle.id)
    session.flush()
    return ids


def utc(days: int = 0) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=days)
