"""Generation rows: created when streaming starts, saved while it streams, finished at the end."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from core.errors import UserError
from storage.models import Generation, GenerationStatus, utcnow

FINAL_STATUSES = frozenset(s.value for s in GenerationStatus) - {"streaming"}


def create_generation(
    session: Session,
    *,
    prompt_id: int,
    model_id: int,
    params: dict[str, Any],
    author_id: int | None = None,
) -> Generation:
    gen = Generation(
        prompt_id=prompt_id,
        model_id=model_id,
        author_id=author_id,
        params=dict(params),
        seed=params.get("seed"),
        status="streaming",
    )
    session.add(gen)
    session.flush()
    return gen


def save_progress(session: Session, *, generation_id: int, **fields: Any) -> None:
    """Write partial text and counters of a streaming generation (one UPDATE, no read)."""
    fields["updated_at"] = utcnow()
    session.exec(sa.update(Generation).where(Generation.id == generation_id).values(**fields))


def finish_generation(session: Session, *, generation_id: int, status: str, **fields: Any) -> None:
    if status not in FINAL_STATUSES:
        raise ValueError(f"final status must be one of {sorted(FINAL_STATUSES)}, got {status!r}")
    save_progress(session, generation_id=generation_id, status=status, **fields)


def reopen_generation(session: Session, *, generation_id: int) -> bool:
    """Set a finished row back to 'streaming' for a continuation. False when it is streaming
    already (another writer got there first): one UPDATE, so two continuations cannot both start."""
    result = session.exec(
        sa.update(Generation)
        .where(Generation.id == generation_id, Generation.status != "streaming")
        .values(status="streaming", finish_reason=None, error=None, updated_at=utcnow())
    )
    return (result.rowcount or 0) == 1


def relabel_finish(session: Session, *, generation_id: int, old: str, new: str) -> bool:
    """Change a finished row's finish reason from ``old`` to ``new`` (one UPDATE; False when the
    row does not hold ``old``, e.g. it was continued or ended otherwise meanwhile)."""
    result = session.exec(
        sa.update(Generation)
        .where(Generation.id == generation_id, Generation.finish_reason == old, Generation.status != "streaming")
        .values(finish_reason=new)
    )
    return (result.rowcount or 0) == 1


def get_generation(session: Session, *, generation_id: int) -> Generation | None:
    return session.get(Generation, generation_id)


def list_generations(
    session: Session,
    *,
    author_id: int | None = None,
    model_id: int | None = None,
    prompt_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[Generation]:
    query = select(Generation).order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit)
    for column, value in ((Generation.author_id, author_id), (Generation.model_id, model_id),
                          (Generation.prompt_id, prompt_id), (Generation.status, status)):
        if value is not None:
            query = query.where(column == value)
    return list(session.exec(query))


def mark_stale_interrupted(session: Session, *, older_than_s: float = 30.0) -> int:
    """Rows still 'streaming' with no save for ``older_than_s`` belong to a dead process: mark them interrupted."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    result = session.exec(
        sa.update(Generation)
        .where(Generation.status == "streaming", Generation.updated_at < cutoff)
        .values(status="interrupted", finish_reason="process_died", updated_at=utcnow())
    )
    return result.rowcount or 0


def set_in_pool(session: Session, *, generation_id: int, in_pool: bool = True) -> Generation:
    gen = session.get(Generation, generation_id)
    if gen is None:
        raise UserError(f"no generation {generation_id}")
    if in_pool and gen.status != GenerationStatus.complete:
        raise UserError(f"only complete generations can join the arena pool (this one is {gen.status})")
    gen.in_pool = in_pool
    session.add(gen)
    session.flush()
    return gen
