"""Generation as a stream of typed events: templates, parser, length control and backends tied
together (``stream_generation``), and the same with a database row kept up to date
(``generate_and_store``, ``run_generation``).

Length control: a target word count sets the answer's token budget from the model's measured
tokens per word (min and max tokens); while the answer streams, its words are counted, and it is
ended at the first sentence end once it reaches the target (finish reason ``target``, status
complete) or cut at 1.2 times the target (``length``, status truncated). A think budget caps the plan: when it runs out the
stream is closed, ``</think><answer>`` appended, and a second request continues from the text
so far. An answer that stops far short of its target is continued the same way. Every request
is checked against the model's context before the backend generates anything.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Optional

from generation.backends.base import Backend, BackendError, BackendRequest, Delta, Finish
from generation.counting import count_words
from generation.events import Answer, Done, Error, Event, Queued, Started, Think
from generation.length import MIN_FRACTION, SHORT_FRACTION, Budget, plan_budget
from generation.parser import ANSWER, BETWEEN, START, THINK, StreamParser
from generation.request import GenerationRequest
from generation.templates import Rendered, render
from core.errors import UserError

__all__ = ["GenerationRequest", "Plan", "prepare", "run_plan", "stream_generation", "generate_and_store", "run_generation"]

MAX_ROUNDS = 4
"""At most this many requests per generation (first, forced answer, continuations)."""
SAVE_INTERVAL_S = 2.0
WORD_CHECK_TOKENS = 16
"""Answer words are recounted at each sentence end and every this many answer tokens (fewer
for small targets: a tenth of the target)."""
HARD_CAP_FRACTION = 1.2
SENTENCE_ENDS = (".", "!", "?", "\n", "。", "！", "？")
CLOSERS = ('"', "”", "'", "’", ")", "」", "*")

_FORCE = {THINK: "</think>\n<answer>\n", START: "<think>\n</think>\n<answer>\n", BETWEEN: "<answer>\n"}
"""Text appended to close the plan and open the answer, by parser state."""


@dataclass
class Plan:
    """A checked request, ready to stream: what to send, how much, and with which seed."""

    request: GenerationRequest
    backend: Backend
    rendered: Rendered
    use_chat: bool
    budget: Budget
    tokens_per_word: float
    prompt_tokens: Optional[int]
    """The exact count when it was needed to plan the budget, else None until the server reports it."""
    context: int
    seed: int
    stats: dict[str, Any] = field(default_factory=dict)
    prompt_tokens_at_most: Optional[int] = None

    @property
    def prefill(self) -> str:
        return self.rendered.prefill if self.use_chat else ""

    @property
    def with_think(self) -> bool:
        return self.rendered.template == "think"

    def params(self) -> dict[str, Any]:
        """Everything needed to reproduce the generation, for the row's ``params``."""
        return {
            **self.request.params(), "seed": self.seed, "template": self.rendered.template,
            "language": self.rendered.language, "api": "chat" if self.use_chat else "completions",
            "budget": {"think": self.budget.think, "answer_max": self.budget.answer_max, "answer_min": self.budget.answer_min},
            "tokens_per_word": round(self.tokens_per_word, 4), "prompt_tokens": self.prompt_tokens,
            **({"prompt_tokens_at_most": self.prompt_tokens_at_most} if self.prompt_tokens is None else {}),
            "context": self.context,
        }


async def prepare(entry, request: GenerationRequest) -> Plan:
    """Check ``request`` against ``entry``'s model and plan its budget. Raises UserError (bad
    template, unreachable backend, unknown model id, over the context) before any generation."""
    from generation.backends import backend_for
    from generation.tokenization import tokens_per_word

    backend = backend_for(entry)
    try:
        rendered = render(entry.template, request.prompt)
    except ValueError as exc:
        raise UserError(f"model {entry.name!r}: {exc}") from None
    use_chat = (entry.sampling or {}).get("api", "chat") == "chat"
    probe = _probe(rendered, use_chat)
    # The server calls run at once (and are cached after the first generation); the first failure
    # in this order is reported, the model check first (it names the server and lists the served models).
    context, tpw, at_most = await _first_failure_raised(
        backend.context_length(), tokens_per_word(backend, rendered.language), backend.prompt_tokens_at_most(probe))

    def budget_for(prompt_tokens: int) -> Budget:
        return plan_budget(
            target_words=request.target_words, think_budget=request.think_budget, max_tokens=request.max_tokens,
            tokens_per_word=tpw, with_think=rendered.template == "think", prompt_tokens=prompt_tokens, context=context,
        )

    # The exact prompt length is asked for only when it could change the budget: when the upper
    # bound leaves the same budget as an empty prompt would, the prompt is far from the context limit.
    budget, prompt_tokens = _budget_if_fits(budget_for, at_most), None
    if budget is None:
        (prompt_tokens,) = await _first_failure_raised(backend.prompt_tokens(probe))
        budget = budget_for(prompt_tokens)
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    return Plan(request, backend, rendered, use_chat, budget, tpw, prompt_tokens, context, seed,
                prompt_tokens_at_most=at_most)


def _probe(rendered: Rendered, use_chat: bool) -> BackendRequest:
    """The prompt as the first request sends it, for counting its tokens."""
    return BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user,
                          assistant=rendered.prefill if use_chat else "", use_chat=use_chat, max_tokens=1)


def _budget_if_fits(budget_for, at_most: int) -> Optional[Budget]:
    try:
        budget = budget_for(at_most)
    except UserError:
        return None
    return budget if budget == budget_for(0) else None


async def _first_failure_raised(*calls) -> list:
    """Run ``calls`` at once; a BackendError becomes a UserError. The first failure (in order) is raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BackendError):
            raise UserError(str(result)) from None
        if isinstance(result, BaseException):
            raise result
    return results


async def run_plan(plan: Plan, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Stream a prepared plan: Queued, Think and Answer events, then Done, or Error on failure.
    ``plan.stats`` records rounds, token split and whether the answer was forced."""
    request, budget, target = plan.request, plan.budget, plan.request.target_words
    parser = StreamParser(prefilled=plan.prefill.endswith("<think>"))
    raw = ""
    think_tokens = answer_tokens = completion_tokens = 0
    finish: Optional[str] = None
    stats = plan.stats
    stats.update(rounds=0, forced_answer=False, continued=0)
    checked_at, target_stop = 0, False
    if plan.with_think and budget.think == 0:
        raw += _FORCE[parser.state]
        parser.force_answer()
        stats["forced_answer"] = True
    for round_index in range(MAX_ROUNDS):
        answering = parser.state not in (START, THINK, BETWEEN) or not plan.with_think
        if answering:
            max_tokens = budget.answer_max - answer_tokens
            min_tokens = 0
            if target:
                missing_words = target * MIN_FRACTION - count_words(parser.answer)
                min_tokens = max(0, min(max_tokens, math.ceil(missing_words * plan.tokens_per_word)))
        else:
            max_tokens = (budget.think - think_tokens) + (budget.answer_max - answer_tokens)
            min_tokens = 0
        if max_tokens <= 0:
            finish = "length"
            break
        stats["rounds"] = round_index + 1
        call = BackendRequest(
            prompt=plan.rendered.raw, system=plan.rendered.system, user=plan.rendered.user,
            assistant=plan.prefill + raw, use_chat=plan.use_chat, max_tokens=max_tokens, min_tokens=min_tokens,
            temperature=request.temperature, top_p=request.top_p, seed=plan.seed + round_index,
            stop=plan.rendered.stop,
        )
        think_over, target_stop, finish, round_tokens = False, False, None, 0
        held: Optional[str] = None  # answer text held back past the target, until a sentence ends
        held_words = 0
        try:
            async with aclosing(plan.backend.stream(call, cancel=cancel)) as items:
                async for item in items:
                    if isinstance(item, Queued):
                        yield item
                    elif isinstance(item, Delta):
                        if plan.prompt_tokens is None and round_index == 0:
                            plan.prompt_tokens = item.prompt_tokens  # reported with the text (continuous usage)
                        raw += item.text
                        tokens = item.tokens if item.tokens is not None else max(1, round(count_words(item.text) * plan.tokens_per_word))
                        round_tokens += tokens
                        was_think = parser.state in (START, THINK)
                        events = parser.feed(item.text)
                        if parser.state in (START, THINK) or (was_think and not any(isinstance(e, Answer) for e in events)):
                            think_tokens += tokens
                        else:
                            answer_tokens += tokens
                        if held is not None:
                            held += "".join(e.text for e in events if isinstance(e, Answer))
                            cut = sentence_cut(held)
                            if cut is not None or held_words + count_words(held) >= HARD_CAP_FRACTION * target:
                                if held[:cut]:
                                    yield Answer(held[:cut])
                                finish, target_stop = ("target" if cut is not None else "length"), True
                                break
                            continue
                        for event in events:
                            yield event
                        if plan.with_think and parser.state in (START, THINK) and think_tokens >= budget.think:
                            think_over = True
                            break
                        if target and parser.state == ANSWER and (
                            any(c in item.text for c in SENTENCE_ENDS) or answer_tokens - checked_at >= min(WORD_CHECK_TOKENS, max(1, target // 10))
                        ):
                            checked_at = answer_tokens
                            words = count_words(parser.answer)
                            if words >= HARD_CAP_FRACTION * target:
                                finish, target_stop = "length", True
                                break
                            if words >= target:
                                if parser.answer.rstrip(" ").endswith(SENTENCE_ENDS):
                                    finish, target_stop = "target", True
                                    break
                                held, held_words = "", words
                    elif isinstance(item, Finish):
                        if plan.prompt_tokens is None and round_index == 0:
                            plan.prompt_tokens = item.prompt_tokens
                        finish = item.finish_reason
                        round_tokens = item.completion_tokens if item.completion_tokens is not None else round_tokens
        except BackendError as exc:
            if held:
                yield Answer(held)
            yield Error(str(exc))
            return
        if held and not target_stop:
            yield Answer(held)  # the stream ended before a sentence did
        completion_tokens += round_tokens
        if finish == "cancelled" or target_stop:
            break
        if plan.with_think and parser.state in (START, THINK, BETWEEN):
            if parser.state == START and not think_over and finish == "stop" and not raw.strip():
                break  # the model wrote nothing at all: nothing to force
            raw += _FORCE[parser.state]
            parser.force_answer()
            stats["forced_answer"] = True
            finish = "length" if finish is None else finish
            continue
        short = target is not None and count_words(parser.answer) < SHORT_FRACTION * target
        if finish == "stop" and short and parser.state == ANSWER and answer_tokens < budget.answer_max:
            stats["continued"] += 1
            continue
        break
    stats.update(think_tokens=think_tokens, answer_tokens=answer_tokens)
    if plan.prompt_tokens is None and finish != "cancelled":  # the first request was closed before any usage came
        try:
            plan.prompt_tokens = await plan.backend.prompt_tokens(_probe(plan.rendered, plan.use_chat))
        except BackendError:
            pass  # the row keeps no prompt length rather than failing a finished generation
    closing = parser.close(finish or "length", prompt_tokens=plan.prompt_tokens, completion_tokens=completion_tokens)
    for event in closing:
        if not (target_stop and isinstance(event, (Think, Answer))):  # text past a target stop stays unsaid
            yield event


def sentence_cut(text: str) -> Optional[int]:
    """Index just past the first sentence end in ``text`` (closing quotes and brackets
    included), or None when no sentence ends in it."""
    for index, char in enumerate(text):
        if char in SENTENCE_ENDS:
            end = index + 1
            while end < len(text) and text[end] in CLOSERS:
                end += 1
            return end
    return None


async def stream_generation(entry, request: GenerationRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Generate for ``request`` with ``entry``'s model; no database. Bad requests raise
    UserError at the first iteration, before anything is generated; backend failures while
    streaming come as an Error event. Cancelling (``cancel.set()`` or closing the iterator)
    aborts the server request."""
    plan = await prepare(entry, request)
    async with aclosing(run_plan(plan, cancel=cancel)) as events:
        async for event in events:
            yield event


async def generate_and_store(
    engine,
    *,
    model: str,
    request: GenerationRequest,
    author_id: Optional[int] = None,
    category: Optional[str] = None,
    cancel: Optional[asyncio.Event] = None,
) -> AsyncIterator[Event]:
    """``stream_generation`` with a generations row: yields ``Started(id)`` first, saves the
    partial text at least every 2 s, and finishes the row on every exit path (complete,
    truncated, interrupted on cancel/close/backend death, failed). Bad input raises UserError
    before any row is written."""
    from generation.recording import GenerationRecorder, lookup_model

    entry = lookup_model(engine, name=model)
    plan = await prepare(entry, request)
    recorder = GenerationRecorder.create(engine, entry=entry, request=request, plan_params=plan.params(),
                                         author_id=author_id, category=category)
    heartbeat = asyncio.ensure_future(recorder.heartbeat(SAVE_INTERVAL_S))
    try:
        yield Started(recorder.generation_id)
        async with aclosing(run_plan(plan, cancel=cancel)) as events:
            async for event in events:
                recorder.observe(event)
                if isinstance(event, (Done, Error)):
                    heartbeat.cancel()
                    recorder.finish(extra=plan.stats)
                yield event
    except (GeneratorExit, asyncio.CancelledError):
        recorder.fail_open("interrupted", finish_reason="cancelled", error=None)
        raise
    except BaseException as exc:
        recorder.fail_open("interrupted", finish_reason="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    finally:
        heartbeat.cancel()
        recorder.finish(extra=plan.stats)


def run_generation(engine, **kwargs):
    """:func:`generate_and_store` run to the end; returns the finished Generation row.
    For CLIs and tests (it runs its own event loop)."""
    from storage.engine import session_scope
    from storage.generations import get_generation

    async def consume() -> int:
        generation_id = None
        async with aclosing(generate_and_store(engine, **kwargs)) as events:
            async for event in events:
                if isinstance(event, Started):
                    generation_id = event.generation_id
        return generation_id

    generation_id = asyncio.run(consume())
    with session_scope(engine) as session:
        return get_generation(session, generation_id=generation_id)
