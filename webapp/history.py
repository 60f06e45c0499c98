"""A writer's past generations: list, reopen, offer to the arena.

Every function takes the caller's :class:`~webapp.auth.Identity` and checks on the server
whether they may see or change a generation (who may read a text is :mod:`writing.access`'s
rule: writers only their own, researchers and admins any), except the texts of a battle they were
given and have not voted on yet: those stay blind to them (see
:func:`arena.service.blinded_generation_ids`). A refusal is a :class:`PermissionDenied` that
reads the same whether or not the generation exists, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy.engine import Engine
from sqlmodel import select

from storage.engine import session_scope
from storage.generations import get_generation, list_generations, set_in_pool
from storage.models import Generation, ModelEntry, Prompt
from webapp.auth import Identity, PermissionDenied
from writing import access

HISTORY_COLUMNS = ["id", "when", "model", "status", "words", "in arena", "request"]


@dataclass(frozen=True)
class OpenedGeneration:
    """Everything the Write tab needs to show a stored generation again."""

    id: int
    request: str
    target_words: Optional[int]
    model: str
    think: str
    answer: str
    status: str
    finish_reason: Optional[str]
    error: Optional[str]
    answer_words: int
    completion_tokens: Optional[int]
    duration_ms: Optional[float]
    in_pool: bool
    params: dict[str, Any]


def may_read(who: Identity, generation: Generation) -> bool:
    return access.may_read(user_id=who.user_id, role=who.role, author_id=generation.author_id)


def _owned(session, who: Identity, generation_id: Any) -> Generation:
    from arena.service import blinded_generation_ids
    from storage.engine import row_id

    gid = row_id(generation_id, what="generation")
    generation = get_generation(session, generation_id=gid)
    if generation is None or not may_read(who, generation):
        raise PermissionDenied(f"there is no generation #{gid} that you may open")
    if generation.author_id != who.user_id and gid in blinded_generation_ids(session, annotator_id=who.user_id):
        raise PermissionDenied(f"generation #{gid} is in a battle you have not voted on yet: vote or skip it first")
    return generation


def history_rows(engine: Engine, *, who: Identity, limit: int = 50) -> list[list[Any]]:
    """The caller's own generations, newest first, as rows of :data:`HISTORY_COLUMNS`."""
    with session_scope(engine) as session:
        rows = list_generations(session, author_id=who.user_id, limit=limit)
        prompts = _by_id(session, Prompt, {g.prompt_id for g in rows})
        models = _by_id(session, ModelEntry, {g.model_id for g in rows})
        out = []
        for g in rows:
            text = prompts[g.prompt_id].text if g.prompt_id in prompts else ""
            text = " ".join(text.split())
            out.append([
                g.id,
                g.created_at.strftime("%Y-%m-%d %H:%M"),
                models[g.model_id].name if g.model_id in models else "?",
                g.status,
                g.answer_words,
                "yes" if g.in_pool else "",
                text if len(text) <= 80 else text[:79] + "…",
            ])
        return out


def _by_id(session, table, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.exec(select(table).where(table.id.in_(ids)))}


def open_generation(engine: Engine, *, who: Identity, generation_id: Any) -> OpenedGeneration:
    """A stored generation, if the caller may read it."""
    with session_scope(engine) as session:
        g = _owned(session, who, generation_id)
        prompt = session.get(Prompt, g.prompt_id)
        model = session.get(ModelEntry, g.model_id)
        return OpenedGeneration(
            id=g.id,
            request=prompt.text if prompt else "",
            target_words=(g.params or {}).get("target_words") or (prompt.target_words if prompt else None),
            model=model.name if model else "?",
            think=g.think,
            answer=g.answer,
            status=g.status,
            finish_reason=g.finish_reason,
            error=g.error,
            answer_words=g.answer_words,
            completion_tokens=g.completion_tokens,
            duration_ms=g.duration_ms,
            in_pool=g.in_pool,
            params=dict(g.params or {}),
        )


def offer_to_arena(engine: Engine, *, who: Identity, generation_id: Any) -> int:
    """Put the caller's complete generation into the battle pool. Returns its id.

    Only the author (or an admin) may offer a text; only complete texts are accepted.
    """
    with session_scope(engine) as session:
        g = _owned(session, who, generation_id)
        if g.author_id != who.user_id and who.role != "admin":
            raise PermissionDenied(f"generation #{g.id} is not yours: only its author may send it to the arena")
        set_in_pool(session, generation_id=g.id, in_pool=True)
        return g.id
