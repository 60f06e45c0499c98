"""Continuing a stored text: the same row grows.

A text that was interrupted, cut at its length limit, ended short, or left behind by a dead
process is continued from what the row holds, so it works after a restart and after the backend
died. The request is rebuilt from the row's params (prompt, target, sampling, template); the
template picks the text up again (``generation.service.resume_plan``): a one-request text
continues the assistant turn from the stored plan and answer, a planned text resumes at its next
section. A continuation always has room to grow: toward the target, or by another
``max_tokens`` (or the default answer budget) when the text has none. Each continuation is
appended to ``params["continuations"]``; one that added no word says why there (``nothing_added``).

Refused in one line, before anything is generated: someone else's text, a text still being
written, a complete one, one with nothing to continue, one whose text no longer fits the
model's context (the message gives both numbers).
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import datetime, timezone
from typing import AsyncIterator, Optional

from core.errors import UserError
from generation.counting import count_words
from generation.events import Event
from generation.request import GenerationRequest
from generation.service import prepare, resume_plan
from storage.engine import session_scope
from storage.generations import get_generation, mark_stale_interrupted, reopen_generation
from storage.models import GenerationStatus, ModelEntry, Prompt
from writing.access import may_continue
from writing.recording import GenerationRecorder, recorded
from writing.status import STREAMING
from writing.store import SAVE_INTERVAL_S

STALE_AFTER_S = 30.0
"""A row still 'streaming' with no save for this long belongs to a dead process."""
_REQUEST_KEYS = ("target_words", "think_budget", "temperature", "top_p", "seed", "max_tokens", "repetition_penalty")
NOTHING_ADDED = {
    "stop": "the model ended the text at once",
    "short": "the model ended the text at once",
    "length": "the token budget was spent before a word came",
    "degenerate": "the model wrote no words (it broke down)",
    "cancelled": "it was stopped before a word came",
    "error": "the model failed",
}
"""Why a continuation added no word, by how it finished."""


def _load(engine, generation_id: int, author_id: Optional[int]):
    with session_scope(engine) as session:
        mark_stale_interrupted(session, older_than_s=STALE_AFTER_S)
    with session_scope(engine) as session:
        row = get_generation(session, generation_id=generation_id)
        if row is None:
            raise UserError(f"no generation {generation_id}")
        if not may_continue(user_id=author_id, author_id=row.author_id):
            raise UserError(f"generation {generation_id} belongs to another writer; only its author can continue it")
        if row.status == STREAMING:
            raise UserError(f"generation {generation_id} is still being written; stop it or wait until it ends")
        target = (row.params or {}).get("target_words")
        if row.status == GenerationStatus.complete:
            raise UserError(f"generation {generation_id} is complete ({row.answer_words:,} words"
                            f"{f' for a target of {target:,}' if target else ''}); there is nothing to continue")
        if not (row.think.strip() or row.answer.strip()):
            raise UserError(f"generation {generation_id} has no text to continue; write it again instead")
        if target and row.answer_words >= target:
            raise UserError(f"generation {generation_id} already has {row.answer_words:,} words for a target of "
                            f"{target:,}; there is nothing to continue")
        prompt = session.get(Prompt, row.prompt_id)
        entry = session.get(ModelEntry, row.model_id)
        if entry is None:
            raise UserError(f"the model of generation {generation_id} is no longer registered")
        session.expunge_all()
        return row, entry, prompt.text


async def continue_and_store(engine, *, generation_id: int, author_id: Optional[int] = None,
                             cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Continue generation ``generation_id`` into its own row: ``Started(id)``, then the new
    Think/Answer events (the stored text is not repeated), then Done or Error. Raises UserError
    before anything is generated when the text cannot be continued (see the module docstring)."""
    row, entry, prompt = _load(engine, generation_id, author_id)
    params = dict(row.params or {})
    request = GenerationRequest(prompt=prompt, **{k: params[k] for k in _REQUEST_KEYS if k in params})
    plan = await prepare(entry, request, template=params.get("template") or entry.template)
    plan.seed = (params.get("seed") or plan.seed) + 1000 * (len(params.get("continuations", [])) + 1)
    try:
        stream = await resume_plan(plan, think=row.think, answer=row.answer, sections=params.get("sections", []),
                                   cancel=cancel)
    except UserError as exc:
        raise UserError(f"generation {generation_id} cannot be continued here: {exc}") from None
    with session_scope(engine) as session:
        if not reopen_generation(session, generation_id=generation_id):
            raise UserError(f"generation {generation_id} is still being written; stop it or wait until it ends")
    words_before = row.answer_words
    recorder = GenerationRecorder.resume(engine, row, params=params)

    def record() -> None:
        stats = plan.stats
        words_after = count_words(recorder.answer)
        entry = {"from_words": words_before, "to_words": words_after, "rounds": stats.get("rounds", 0),
                 "finish": recorder.finish_reason, "ending": stats.get("ending"),
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if words_after <= words_before:
            entry["nothing_added"] = NOTHING_ADDED.get(recorder.finish_reason or "", "the model wrote no words")
        recorder.params = {**params, "continuations": [*params.get("continuations", []), entry]}
        recorder.finish(extra=stats)

    async with aclosing(recorded(recorder, stream, finish=record, save_interval_s=SAVE_INTERVAL_S)) as events:
        async for event in events:
            yield event


def nothing_added(row) -> Optional[str]:
    """Why the last continuation of ``row`` added no word, or None when it grew the text."""
    continuations = (row.params or {}).get("continuations") or []
    return continuations[-1].get("nothing_added") if continuations else None
