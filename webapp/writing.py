"""The Write tab's logic without Gradio: check inputs, run a generation, fold its events into a view.

- :func:`check_inputs` turns the form's raw values into :class:`WriteInputs` or raises a
  one-line :class:`UserError` (empty request, request too long with its size and the limit,
  bad numbers). Nothing is stored when it raises.
- :class:`WriteView` folds generation events (``Started``, ``Queued``, ``Think``, ``Answer``,
  ``Done``, ``Error``) into what the page shows; it is pure, given a clock value per event.
- :class:`ActiveRuns` holds the cancel event of every running generation, keyed by the
  username of its author (and tagged with the browser session that started it), so Stop can
  only ever reach the caller's own runs. A cancel carries its reason: the writer pressed Stop
  (``STOPPED``), or the page went away (``CLOSED``: the tab closed or reloaded, the connection
  dropped). The row of a run whose page went away says ``closed`` ("interrupted"), not
  ``cancelled`` ("stopped by you").
- :func:`method_line` says which method writes a request (one request or planned in sections)
  and why, for the model, target and method on the form.
- :func:`run_generation` starts ``writing.store.generate_and_store`` in its own task at
  once and hands its events over through a queue. The task outlives the browser connection: when
  the page goes away, the run is cancelled and the task still finishes the row (as
  ``interrupted``), instead of being torn down halfway through a database write.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

from core.errors import UserError
from generation.control import LOOPING
from storage.models import GenerationStatus
from generation.request import MAX_FORM_PROMPT_CHARS as MAX_REQUEST_CHARS, GenerationRequest
from generation.templates import METHODS

MAX_RUNS_PER_USER = 4
_SENTINEL = object()
STOPPED, CLOSED = "stopped", "closed"
"""Why a run was cancelled: Stop, or its page went away. ``CLOSED`` is also the finish reason its
row gets (the service records every cancel as ``cancelled``)."""
SLOW_AFTER_S = 10.0
"""The pace is judged once the text has streamed this long (the first seconds say little)."""
SLOW_FINISH_S = 30 * 60
"""A model that would need longer than this to reach the target at its pace is called slow."""
SLOW_WORDS_PER_S = 2.0
"""Without a target, a model writing fewer words a second than this is called slow (a reader
reads about four)."""


@dataclass(frozen=True)
class WriteInputs:
    """A checked request from the form."""

    prompt: str
    target_words: Optional[int]
    model: str
    temperature: float
    top_p: float
    seed: Optional[int]
    think_budget: Optional[int]
    method: Optional[str] = None
    """The writer's pick of ``generation.templates.METHODS`` (None: the model's own)."""


def check_inputs(
    *,
    prompt: Any,
    target_words: Any,
    model: Any,
    temperature: Any = None,
    top_p: Any = None,
    seed: Any = None,
    think_budget: Any = None,
    method: Any = None,
    known_models: Optional[list[str]] = None,
) -> WriteInputs:
    """The form's values, checked. Raises UserError with one line saying what to change.

    The values of the request are checked by :meth:`GenerationRequest.from_form`, once, with its
    messages (a target or think budget of 0 or blank means none; a blank seed means the service
    picks one and stores it). Only what the form adds is checked here: the model picked, and the
    form's own length limit on a typed request.
    """
    if isinstance(prompt, str) and len(prompt) > MAX_REQUEST_CHARS:
        raise UserError(f"the prompt is {len(prompt):,} characters, over the limit of {MAX_REQUEST_CHARS:,}; shorten it")
    request = GenerationRequest.from_form(prompt=prompt, target_words=target_words, think_budget=think_budget,
                                          temperature=temperature, top_p=top_p, seed=seed)
    if not isinstance(model, str) or not model:
        raise UserError("pick a model")
    if known_models is not None and model not in known_models:
        raise UserError(f"unknown model {model!r}: pick one of {', '.join(known_models) or '(none registered)'}")
    if method not in (None, "") and method not in METHODS:
        raise UserError(f"unknown method {method!r}: pick one of {', '.join(METHODS)}")
    return WriteInputs(prompt=request.prompt, target_words=request.target_words, model=model,
                       temperature=request.temperature, top_p=request.top_p, seed=request.seed,
                       think_budget=request.think_budget, method=method or None)


def method_line(engine, *, model: Any, target_words: Any, method: Any = None) -> str:
    """One line for the page: the method that will write this request, and why (for example
    "3,000 words > 2,000 this model holds in one request: planned in sections"). Empty while
    the form cannot say yet (no model picked); a refusal reads as its one-line reason."""
    from writing.models import lookup_model, method_choice

    if not isinstance(model, str) or not model:
        return ""
    try:
        target = GenerationRequest.from_form(prompt="-", target_words=target_words).target_words
        choice = method_choice(lookup_model(engine, name=model), target_words=target, method=method or None)
    except UserError as exc:
        return f"Method: {exc}"
    return f"Method: {choice.why}"


@dataclass
class WriteView:
    """What the page shows about one generation, built from its events (times in seconds)."""

    started_at: float
    generation_id: Optional[int] = None
    queue_position: Optional[int] = None
    think: str = ""
    answer: str = ""
    think_started: Optional[float] = None
    think_ended: Optional[float] = None
    answer_started: Optional[float] = None
    finished_at: Optional[float] = None
    finish_reason: Optional[str] = None
    completion_tokens: Optional[int] = None
    error: Optional[str] = None
    _answer_count: Any = field(default=None, repr=False)

    @property
    def answer_words(self) -> int:
        """Words in the answer so far, counted only where it grew (a live count costs the same at 10,000 words as at 100)."""
        from generation.counting import GrowingCount

        if self._answer_count is None:
            self._answer_count = GrowingCount()
        return self._answer_count(self.answer)

    @property
    def ended(self) -> bool:
        return self.finished_at is not None

    def apply(self, event: Any, now: float) -> None:
        """Fold one event in. Unknown event types are ignored (newer producers, older page)."""
        from generation import events as ev

        if isinstance(event, ev.Started):
            self.generation_id = event.generation_id
        elif isinstance(event, ev.Queued):
            self.queue_position = event.position
        elif isinstance(event, ev.Think):
            self.queue_position = None
            if self.think_started is None:
                self.think_started = now
            self.think += event.text
        elif isinstance(event, ev.Answer):
            self.queue_position = None
            if self.think_started is not None and self.think_ended is None:
                self.think_ended = now
            if self.answer_started is None and event.text:
                self.answer_started = now
            self.answer += event.text
        elif isinstance(event, ev.Done):
            self._end(now)
            self.finish_reason = event.finish_reason
            self.completion_tokens = event.completion_tokens
        elif isinstance(event, ev.Error):
            self._end(now)
            self.error = event.message

    def _end(self, now: float) -> None:
        self.queue_position = None
        if self.think_started is not None and self.think_ended is None:
            self.think_ended = now
        self.finished_at = now

    def phase(self) -> tuple:
        """What changes the page's layout: a place in the queue, a plan begun, an answer begun.
        A change of phase is shown at once; within one phase, updates are spaced out."""
        return self.queue_position, self.think_started is not None, bool(self.answer)

    def thinking_state(self, now: float) -> tuple[str, Optional[float]]:
        """``(state, seconds)`` for :func:`webapp.rendering.thinking_label`."""
        if self.think_started is None:
            return ("none", None) if (self.answer or self.ended) else ("pending", None)
        if self.think_ended is None:
            return "thinking", now - self.think_started
        return "done", self.think_ended - self.think_started

    def pace(self, now: float) -> Optional[float]:
        """Answer words a second since the answer began, once it has streamed SLOW_AFTER_S; else None."""
        if self.answer_started is None or now - self.answer_started < SLOW_AFTER_S:
            return None
        return self.answer_words / (now - self.answer_started)

    def slow(self, now: float, target_words: Optional[int]) -> Optional[tuple[float, Optional[float]]]:
        """``(words per second, seconds still needed for the target or None)`` when the model is
        too slow for what was asked: the target would take over SLOW_FINISH_S at this pace, or,
        without a target, it writes under SLOW_WORDS_PER_S. None while it keeps up (or too early
        to say, or once the text ended)."""
        pace = self.pace(now)
        if pace is None or self.ended:
            return None
        if target_words:
            left = max(0, target_words - self.answer_words)
            needed = left / pace if pace > 0 else float("inf")
            return (pace, needed) if left and needed > SLOW_FINISH_S else None
        return (pace, None) if pace < SLOW_WORDS_PER_S else None

    def status(self) -> str:
        """The row status this view implies (the database holds the authoritative one)."""
        if self.error:
            return "interrupted" if (self.think or self.answer) else "failed"
        if self.finish_reason == "cancelled":
            return "interrupted"
        if self.finish_reason in ("length", "degenerate", LOOPING):
            return "truncated"
        if self.finish_reason == "short":
            return "short"
        return GenerationStatus.complete.value if self.ended else GenerationStatus.streaming.value


@dataclass(eq=False)
class Run:
    owner: str
    session: Optional[str]
    cancel: asyncio.Event
    loop: asyncio.AbstractEventLoop
    generation_id: Optional[int] = None
    reason: Optional[str] = None
    """Why it was cancelled (STOPPED or CLOSED; the first reason given stays), None while it was not."""

    def stop(self, reason: str) -> None:
        """Cancel the run for ``reason``, from any thread."""
        if self.reason is None:
            self.reason = reason
        self.loop.call_soon_threadsafe(self.cancel.set)


class ActiveRuns:
    """Cancel events of running generations, keyed by the author's username.

    Thread-safe: Gradio may call handlers from several threads and event loops, so events are
    set through their own loop.
    """

    def __init__(self, *, max_per_user: Optional[int] = MAX_RUNS_PER_USER) -> None:
        self.max_per_user = max_per_user
        self._runs: dict[str, list[Run]] = {}
        self._lock = threading.Lock()

    def add(self, *, owner: str, session: Optional[str]) -> Run:
        """Register a new run for ``owner``; refuses past ``max_per_user`` running at once."""
        with self._lock:
            runs = self._runs.setdefault(owner, [])
            if self.max_per_user is not None and len(runs) >= self.max_per_user:
                raise UserError(f"you already have {len(runs)} texts being written; stop one or wait")
            run = Run(owner=owner, session=session, cancel=asyncio.Event(), loop=asyncio.get_running_loop())
            runs.append(run)
            return run

    def remove(self, run: Run) -> None:
        with self._lock:
            runs = self._runs.get(run.owner, [])
            if run in runs:
                runs.remove(run)
            if not runs:
                self._runs.pop(run.owner, None)

    def count(self, owner: str) -> int:
        with self._lock:
            return len(self._runs.get(owner, []))

    def cancel(self, *, owner: str, session: Optional[str] = None, generation_id: Optional[int] = None,
               reason: str = STOPPED) -> int:
        """Cancel ``owner``'s runs (only those of ``session`` / ``generation_id`` when given) for
        ``reason`` (STOPPED: the Stop button; CLOSED: the page went away). Returns how many."""
        with self._lock:
            chosen = [r for r in self._runs.get(owner, [])
                      if (session is None or r.session == session)
                      and (generation_id is None or r.generation_id == generation_id)]
        for run in chosen:
            run.stop(reason)
        return len(chosen)


def run_generation(
    engine,
    *,
    inputs: WriteInputs,
    author_id: int,
    run: Run,
    tick_after: Optional[float] = None,
) -> AsyncIterator[Any]:
    """Start one stored generation now, in a task of its own, and return an iterator of its events.

    The task starts before the first event is asked for, so the model server is already at work
    while the caller gets ready. With ``tick_after``, a ``None`` is yielded once, that many
    seconds after the start, if the stream is still going then: a caller that waits for the
    model's first words before its first update uses it to show something anyway when they are
    slow to come. The task finishes the row whatever happens to the iterator: closing the
    iterator (the page went away) or setting ``run.cancel`` makes it end the stream, which the
    service records as ``interrupted``. Whoever calls this sets ``run.cancel`` when done with
    the run, in case the iterator was never started.
    """
    from writing.store import generate_and_store

    request = GenerationRequest(
        prompt=inputs.prompt,
        target_words=inputs.target_words,
        think_budget=inputs.think_budget,
        temperature=inputs.temperature,
        top_p=inputs.top_p,
        seed=inputs.seed,
    )
    return _run_in_task(engine, lambda: generate_and_store(engine, model=inputs.model, request=request,
                                                           author_id=author_id, cancel=run.cancel,
                                                           method=inputs.method), run, tick_after)


def run_continuation(engine, *, generation_id: int, author_id: int, run: Run,
                     tick_after: Optional[float] = None) -> AsyncIterator[Any]:
    """:func:`run_generation` for Continue: the stored text ``generation_id`` grows in its own row
    (``writing.continuation``); refusals (someone else's text, one still streaming, one that
    is complete) come out of the iterator as UserError, before anything is generated."""
    from writing.continuation import continue_and_store

    return _run_in_task(engine, lambda: continue_and_store(engine, generation_id=generation_id, author_id=author_id,
                                                           cancel=run.cancel), run, tick_after)


def _run_in_task(engine, source, run: Run, tick_after: Optional[float]) -> AsyncIterator[Any]:
    from generation.events import Started

    queue: asyncio.Queue = asyncio.Queue()

    async def produce() -> None:
        try:
            async for event in source():
                if isinstance(event, Started):
                    run.generation_id = event.generation_id
                queue.put_nowait(event)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put_nowait(exc)
        finally:
            if run.reason == CLOSED and run.generation_id is not None:
                mark_closed(engine, run.generation_id)
            queue.put_nowait(_SENTINEL)

    task = asyncio.ensure_future(produce())
    _keep_alive(task)
    tick_at = None if tick_after is None else time.monotonic() + tick_after
    return _events(queue, task, run, tick_at)


async def _events(queue: asyncio.Queue, task: asyncio.Future, run: Run, tick_at: Optional[float]) -> AsyncIterator[Any]:
    try:
        while True:
            if tick_at is not None and queue.empty():
                try:  # a cancelled get loses no item: asyncio.Queue leaves it for the next one
                    async with asyncio.timeout(max(0.0, tick_at - time.monotonic())):  # not wait_for: see stall.guard
                        item = await queue.get()
                except TimeoutError:
                    tick_at = None
                    yield None
                    continue
            else:
                item = await queue.get()
            if item is _SENTINEL:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not task.done():  # the page went away before the text ended
            run.stop(CLOSED)


def mark_closed(engine, generation_id: int) -> None:
    """The row of a run whose page went away says so: its finish reason ``cancelled`` (which reads
    "stopped by you") becomes CLOSED. Only a row the cancel ended is changed."""
    from storage.engine import session_scope
    from storage.generations import relabel_finish

    with session_scope(engine) as session:
        relabel_finish(session, generation_id=generation_id, old="cancelled", new=CLOSED)


_PENDING: set[asyncio.Future] = set()


def _keep_alive(task: asyncio.Future) -> None:
    """Hold a reference to a producer task until it finishes (the loop only keeps weak ones)."""
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


def elapsed(view: WriteView, now: Optional[float] = None) -> float:
    now = time.monotonic() if now is None else now
    return (view.finished_at or now) - view.started_at
