"""Keeping a generations row in step with a stream, through ``storage.generations`` only.

The row is created when streaming starts, its partial text saved on a heartbeat, and it is
finished exactly once, whichever way the stream ends. A process killed outright leaves the row
``streaming`` with its last saved text; ``storage.generations.mark_stale_interrupted`` turns
such rows into ``interrupted`` (the batch CLI runs it at start).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from typing import Any, AsyncIterator, Callable, Optional

from generation.counting import count_words
from generation.events import Answer, Done, Error, Event, Started, Think
from storage.catalog import WRITER_SOURCE, get_or_add_prompt
from storage.engine import session_scope, write_scope
from storage.generations import create_generation, finish_generation, get_generation, save_progress
from writing.status import status_of_finish

RESULT_KEYS = ("ending", "plan", "sections", "conclude_at_words", "loops", "plan_from_request")
"""Length-control results copied from the plan's stats into the row's params."""


class GenerationRecorder:
    """Accumulates a stream's text and writes it to one row."""

    def __init__(self, engine, generation_id: int, *, think: str = "", answer: str = "",
                 params: Optional[dict] = None, base_tokens: int = 0) -> None:
        self.engine = engine
        self.generation_id = generation_id
        self.think = think
        self.answer = answer
        self.params = dict(params or {})
        self.base_tokens = base_tokens
        """Tokens the row already held (a continuation adds its own to them)."""
        self.started = time.monotonic()
        self.ttft_ms: Optional[float] = None
        self.status: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self.error: Optional[str] = None
        self.prompt_tokens: Optional[int] = None
        self.completion_tokens: Optional[int] = None
        self.finished = False

    @classmethod
    def create(cls, engine, *, entry, request, plan_params: dict, author_id: Optional[int], category: Optional[str]) -> "GenerationRecorder":
        with write_scope(engine) as session:
            prompt, _ = get_or_add_prompt(session, text=request.prompt, category=category,
                                          target_words=request.target_words, source=WRITER_SOURCE)
            row = create_generation(session, prompt_id=prompt.id, model_id=entry.id, params=plan_params, author_id=author_id)
            return cls(engine, row.id, params=plan_params)

    @classmethod
    def resume(cls, engine, row, *, params: dict) -> "GenerationRecorder":
        """Continue writing into an existing row (already set back to ``streaming``): its text
        is the start of this recorder's text."""
        return cls(engine, row.id, think=row.think, answer=row.answer, params=params,
                   base_tokens=row.completion_tokens or 0)

    def observe(self, event: Event) -> None:
        if isinstance(event, (Think, Answer)):
            if self.ttft_ms is None:
                self.ttft_ms = (time.monotonic() - self.started) * 1000
            if isinstance(event, Think):
                self.think += event.text
            else:
                self.answer += event.text
        elif isinstance(event, Done):
            self.status = status_of_finish(event.finish_reason)
            self.finish_reason = event.finish_reason
            self.prompt_tokens = event.prompt_tokens
            self.completion_tokens = self.base_tokens + (event.completion_tokens or 0) if (
                self.base_tokens or event.completion_tokens is not None) else None
        elif isinstance(event, Error):
            self.status = "interrupted" if (self.think.strip() or self.answer.strip()) else "failed"
            self.finish_reason, self.error = "error", event.message

    def fail_open(self, status: str, *, finish_reason: str, error: Optional[str]) -> None:
        """Mark how the stream ended early, unless it already ended on its own."""
        if self.status is None:
            has_text = bool(self.think.strip() or self.answer.strip())
            self.status = status if has_text or status == "interrupted" else "failed"
            self.finish_reason, self.error = finish_reason, error

    def _text_fields(self) -> dict[str, Any]:
        return {"think": self.think.strip(), "answer": self.answer.strip(),
                "think_words": count_words(self.think), "answer_words": count_words(self.answer)}

    def save(self) -> None:
        if self.finished:
            return
        with session_scope(self.engine) as session:
            save_progress(session, generation_id=self.generation_id, **self._text_fields(),
                          ttft_ms=self.ttft_ms, duration_ms=(time.monotonic() - self.started) * 1000)

    async def heartbeat(self, interval_s: float) -> None:
        """Save the partial text every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.save()

    def finish(self, *, extra: Optional[dict] = None) -> None:
        """Write the final state once; later calls do nothing. The length-control results in
        ``extra`` (RESULT_KEYS) also go into the row's params."""
        if self.finished:
            return
        self.finished = True
        with session_scope(self.engine) as session:
            row = get_generation(session, generation_id=self.generation_id)
            merged_extra = {**(row.extra or {}), **(extra or {})} if row is not None else dict(extra or {})
            finish_generation(
                session, generation_id=self.generation_id, status=self.status or "interrupted",
                finish_reason=self.finish_reason, error=self.error, prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens, ttft_ms=self.ttft_ms,
                duration_ms=(time.monotonic() - self.started) * 1000, extra=merged_extra, **self._text_fields(),
                params={**self.params, **{k: v for k, v in (extra or {}).items() if k in RESULT_KEYS}},
            )


async def recorded(recorder: "GenerationRecorder", events: AsyncIterator[Event], *, finish: Callable[[], None],
                   save_interval_s: float) -> AsyncIterator[Event]:
    """``Started(id)``, then ``events``, with the row saved at least every ``save_interval_s``.

    ``finish()`` closes the row once the stream is done; every other exit (the caller closing the
    iterator, a cancel, a failure) marks the row interrupted first, so nothing stays ``streaming``.
    """
    heartbeat = asyncio.ensure_future(recorder.heartbeat(save_interval_s))
    try:
        yield Started(recorder.generation_id)
        async with aclosing(events) as stream:
            async for event in stream:
                recorder.observe(event)
                if isinstance(event, (Done, Error)):
                    heartbeat.cancel()
                    finish()
                yield event
    except (GeneratorExit, asyncio.CancelledError):
        recorder.fail_open("interrupted", finish_reason="cancelled", error=None)
        raise
    except BaseException as exc:
        recorder.fail_open("interrupted", finish_reason="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    finally:
        heartbeat.cancel()
        finish()
