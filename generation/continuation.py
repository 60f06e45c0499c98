"""Continuing a stored text: the same row grows.

A text that was interrupted, cut at its length limit, ended short, or left behind by a dead
process is continued from what the row holds, so it works after a restart and after the backend
died. The request is rebuilt from the row's params (prompt, target, sampling, template); the
model continues the assistant turn from the stored plan and answer; the answer starts with the
old answer. Each continuation is appended to ``params["continuations"]``. The plan template
resumes at its next section instead.

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
from generation.control import LengthController, TokenLedger
from generation.counting import count_words
from generation.events import Event
from generation.length import MIN_ANSWER_TOKENS, Budget
from generation.parser import THINK, THINK_OPEN, StreamParser, answer_opening
from generation.request import GenerationRequest

STALE_AFTER_S = 30.0
"""A row still 'streaming' with no save for this long belongs to a dead process."""
_REQUEST_KEYS = ("target_words", "think_budget", "temperature", "top_p", "seed", "max_tokens")


def _load(engine, generation_id: int, author_id: Optional[int]):
    from storage.engine import session_scope
    from storage.generations import get_generation, mark_stale_interrupted
    from storage.models import GenerationStatus, ModelEntry, Prompt

    with session_scope(engine) as session:
        mark_stale_interrupted(session, older_than_s=STALE_AFTER_S)
    with session_scope(engine) as session:
        row = get_generation(session, generation_id=generation_id)
        if row is None:
            raise UserError(f"no generation {generation_id}")
        if row.author_id != author_id:
            raise UserError(f"generation {generation_id} belongs to another writer; only its author can continue it")
        if row.status == "streaming":
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
    from generation.recording import GenerationRecorder, recorded
    from generation.service import SAVE_INTERVAL_S, prepare
    from storage.engine import session_scope
    from storage.generations import reopen_generation

    row, entry, prompt = _load(engine, generation_id, author_id)
    params = dict(row.params or {})
    request = GenerationRequest(prompt=prompt, **{k: params[k] for k in _REQUEST_KEYS if k in params})
    template = params.get("template") or entry.template
    plan = await prepare(entry, request, template=template)
    plan.seed = (params.get("seed") or plan.seed) + 1000 * (len(params.get("continuations", [])) + 1)
    if template == "plan":
        from generation.agentwrite import run_agentwrite

        stream = run_agentwrite(plan, cancel=cancel, start={"think": row.think, "answer": row.answer,
                                                             "sections": params.get("sections", [])})
    else:
        progress = await _progress(plan, row, generation_id)
        from generation.service import _loop

        stream = _loop(plan, progress, cancel=cancel)
    with session_scope(engine) as session:
        if not reopen_generation(session, generation_id=generation_id):
            raise UserError(f"generation {generation_id} is still being written; stop it or wait until it ends")
    words_before = row.answer_words
    recorder = GenerationRecorder.resume(engine, row, params=params)

    def record() -> None:
        stats = plan.stats
        recorder.params = {**params, "continuations": [*params.get("continuations", []), {
            "from_words": words_before, "to_words": count_words(recorder.answer), "rounds": stats.get("rounds", 0),
            "finish": recorder.finish_reason, "ending": stats.get("ending"),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}]}
        recorder.finish(extra=stats)

    async with aclosing(recorded(recorder, stream, finish=record, save_interval_s=SAVE_INTERVAL_S)) as events:
        async for event in events:
            yield event


async def _progress(plan, row, generation_id: int):
    """The round loop's state for a stored text: parser at the end of the text, tokens spent,
    and the check that the text still fits the model's context."""
    from generation.service import _Progress, _probe

    prefilled = plan.prefill.endswith(THINK_OPEN)
    parser = StreamParser(prefilled=prefilled)
    thinking = plan.with_think and not row.answer.strip()
    if plan.with_think:
        raw = ("" if prefilled else THINK_OPEN) + row.think
        raw += "" if thinking else answer_opening(THINK) + row.answer
        parser.resume(row.think, "" if thinking else row.answer)
    else:
        raw = row.answer
        parser.resume("", row.answer)
    probe = _probe(plan.rendered, plan.use_chat)
    probe.assistant = plan.prefill + raw
    try:
        prompt_tokens, text_tokens = await asyncio.gather(plan.backend.prompt_tokens(probe),
                                                          plan.backend.count_tokens(plan.prefill + raw))
    except Exception as exc:  # a BackendError from either count
        raise UserError(str(exc)) from None
    room = plan.context - prompt_tokens
    if room < MIN_ANSWER_TOKENS:
        raise UserError(f"generation {generation_id} cannot be continued here: its text so far is {text_tokens:,} "
                        f"tokens ({prompt_tokens:,} with the prompt), and the model's context is {plan.context:,} tokens")
    budget = plan.budget
    if plan.request.target_words is None:  # no target: a fresh answer budget, within what the context leaves
        budget = Budget(think=budget.think, answer_max=budget.answer_max, answer_min=0)
    ledger = TokenLedger(budget)
    if plan.request.target_words is not None:
        ledger.answer = await plan.backend.count_tokens(row.answer) if row.answer else 0
    ledger.think = budget.think if not thinking else await plan.backend.count_tokens(row.think)
    spare = max(0, room - max(0, budget.think - ledger.think))
    if ledger.answer_left > spare:
        ledger.budget = Budget(budget.think, ledger.answer + spare, min(budget.answer_min, ledger.answer + spare))
    controller = LengthController(plan.request.target_words)
    controller.words = count_words(row.answer)
    if controller.should_steer():
        controller.concluding = True
    return _Progress(parser, ledger, controller, raw=raw)
