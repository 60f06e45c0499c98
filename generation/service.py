"""Generation as a stream of typed events: templates, parser, length control and backends tied
together (``stream_generation``), and the same with a database row kept up to date
(``generate_and_store``, ``generate_to_row``).

Length control: a target word count sets the answer's token budget from the model's measured
tokens per word (``generation.length``); while the answer streams, a ``LengthController``
(``generation.control``) counts its words, asks the model to conclude as it nears the target,
ends it at the first sentence end past the target (finish reason ``target``, status complete) or
cuts it at 1.2 times the target (``length``, status truncated). A think budget caps the plan:
when it runs out the stream is closed, the answer forced open (the parser says with which text)
and a new request continues from the text so far. An answer that stops far short of its target
is continued the same way, while the token budget lasts; one that still ends short finishes as
``short``. Every request is checked against the model's context before anything is generated.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Optional

from generation.backends.base import Backend, BackendError, BackendRequest, Delta, Finish
from generation.counting import count_words
from generation.events import Answer, Error, Event, Queued, Started, Think
from generation.control import LengthController, TokenLedger
from generation.length import DEFAULT_ANSWER_TOKENS, MAX_FRACTION, MIN_ANSWER_TOKENS, Budget, answer_token_range, plan_budget
from generation.parser import AFTER, ANSWER, ANSWER_CLOSE, BETWEEN, START, THINK, THINK_OPEN, StreamParser, answer_opening
from generation.request import GenerationRequest
from generation.templates import Rendered, render
from core.errors import UserError

__all__ = ["GenerationRequest", "Plan", "prepare", "run_plan", "stream_generation", "generate_and_store", "generate_to_row"]

SAVE_INTERVAL_S = 2.0


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


async def prepare(entry, request: GenerationRequest, *, template: Optional[str] = None) -> Plan:
    """Check ``request`` against ``entry``'s model and plan its budget. Raises UserError (bad
    template, unreachable backend, unknown model id, over the context) before any generation.
    ``template`` overrides the entry's (a continuation keeps the template its text began with)."""
    from generation.backends import backend_for
    from generation.tokenization import tokens_per_word

    backend = backend_for(entry)
    model_penalty = (entry.sampling or {}).get("repetition_penalty")
    if request.repetition_penalty is None and model_penalty is not None:  # the model's own; the row records it
        request = replace(request, repetition_penalty=model_penalty)
    try:
        rendered = render(template or entry.template, request.prompt)
    except ValueError as exc:
        raise UserError(f"model {entry.name!r}: {exc}") from None
    use_chat = (entry.sampling or {}).get("api", "chat") == "chat"
    probe = _probe(rendered, use_chat)
    # The server calls run at once (and are cached after the first generation); the first failure
    # in this order is reported, the model check first (it names the server and lists the served models).
    context, tpw, at_most = await _first_failure_raised(
        backend.context_length(), tokens_per_word(backend, rendered.language), backend.prompt_tokens_at_most(probe))

    if rendered.template == "plan":
        return await _prepare_agentwrite(request, backend, rendered, use_chat, context, tpw, at_most)

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


async def _prepare_agentwrite(request, backend, rendered, use_chat, context, tpw, at_most) -> Plan:
    """The plan template's checks: every section request must fit the context, not the whole text."""
    from generation.agentwrite import check_reachable, default_plan_tokens

    think = request.think_budget if request.think_budget is not None else default_plan_tokens(request.target_words)
    prompt_tokens = None
    try:
        check_reachable(target=request.target_words, plan_tokens=think, prompt_tokens=at_most, tokens_per_word=tpw,
                        context=context)
    except UserError:
        (prompt_tokens,) = await _first_failure_raised(backend.prompt_tokens(_probe(rendered, use_chat)))
        check_reachable(target=request.target_words, plan_tokens=think, prompt_tokens=prompt_tokens,
                        tokens_per_word=tpw, context=context)
    if request.target_words is not None:
        answer_min, answer_max = answer_token_range(request.target_words, tpw)
    else:
        answer_min, answer_max = 0, request.max_tokens or DEFAULT_ANSWER_TOKENS
    seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
    return Plan(request, backend, rendered, use_chat, Budget(think, answer_max, answer_min), tpw, prompt_tokens,
                context, seed, prompt_tokens_at_most=at_most)


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


@dataclass
class _Progress:
    """What the round loop carries from one request to the next."""

    parser: StreamParser
    ledger: TokenLedger
    controller: LengthController
    raw: str = ""
    """The assistant text sent so far (after the pre-fill): tags, plan and answer."""
    finish: Optional[str] = None
    failed: bool = False
    steer: bool = False
    """The round was closed so that the next one asks the model to conclude."""

    @property
    def answering(self) -> bool:
        return self.parser.state in (ANSWER, AFTER)


def _force_answer(progress: _Progress, stats: dict) -> None:
    progress.raw += answer_opening(progress.parser.state)
    progress.parser.force_answer()
    stats["forced_answer"] = True


def _call(plan: Plan, progress: _Progress, round_index: int) -> BackendRequest:
    answering = progress.answering or not plan.with_think
    max_tokens, min_tokens = progress.ledger.limits(answering=answering, steer_min=not progress.controller.concluding)
    rendered = plan.rendered
    if progress.controller.concluding:
        left = progress.controller.words_left()
        rendered = render(rendered.template, plan.request.prompt, conclude_within=left)
        cap_words = progress.controller.hard_cap - progress.controller.words
        max_tokens = min(max_tokens, max(MIN_ANSWER_TOKENS, math.ceil(cap_words * plan.tokens_per_word * MAX_FRACTION)))
    return BackendRequest(
        prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant=plan.prefill + progress.raw,
        use_chat=plan.use_chat, max_tokens=max_tokens, min_tokens=min_tokens, temperature=plan.request.temperature,
        top_p=plan.request.top_p, seed=plan.seed + round_index, repetition_penalty=plan.request.repetition_penalty,
        stop=rendered.stop,
        bad_words=rendered.stop if min_tokens else [],
    )


async def _round(plan: Plan, call: BackendRequest, progress: _Progress, first: bool,
                 cancel: Optional[asyncio.Event]) -> AsyncIterator[Event]:
    """Stream one request, feeding the parser, the ledger and the length controller. Sets
    ``progress.finish`` (None when the loop closed the stream itself) or ``progress.failed``."""
    parser, ledger, controller = progress.parser, progress.ledger, progress.controller
    progress.finish, progress.steer, round_tokens = None, False, 0
    try:
        async with aclosing(plan.backend.stream(call, cancel=cancel)) as items:
            async for item in items:
                if isinstance(item, Queued):
                    yield item
                elif isinstance(item, Delta):
                    if plan.prompt_tokens is None and first:
                        plan.prompt_tokens = item.prompt_tokens  # reported with the text (continuous usage)
                    progress.raw += item.text
                    tokens = item.tokens if item.tokens is not None else max(1, round(count_words(item.text) * plan.tokens_per_word))
                    round_tokens += tokens
                    was_think = parser.state in (START, THINK)
                    events = parser.feed(item.text)
                    thinking = parser.state in (START, THINK) or (was_think and not any(isinstance(e, Answer) for e in events))
                    ledger.spend(tokens, thinking=thinking)
                    for event in events:
                        if isinstance(event, Answer):
                            text = controller.feed(event.text, parser.answer, tokens)
                            if text:
                                yield Answer(text)
                        else:
                            yield event
                    if controller.stop_reason is not None:
                        break
                    if plan.with_think and parser.state in (START, THINK) and ledger.think_over:
                        break
                    if parser.state == ANSWER and controller.should_steer():
                        progress.steer = True
                        break
                elif isinstance(item, Finish):
                    if plan.prompt_tokens is None and first:
                        plan.prompt_tokens = item.prompt_tokens
                    progress.finish = item.finish_reason
                    round_tokens = item.completion_tokens if item.completion_tokens is not None else round_tokens
    except BackendError as exc:
        held = controller.flush()
        if held:
            yield Answer(held)
        yield Error(str(exc))
        progress.failed = True
        return
    held = controller.flush()
    if held:
        yield Answer(held)  # the stream ended before a sentence did
    if parser.state == AFTER:  # the model closed its answer: the tag stays out of what is sent next
        progress.raw = progress.raw[: progress.raw.rfind(ANSWER_CLOSE)]
        parser.reopen_answer()
        progress.finish = progress.finish or "stop"
    ledger.completion += round_tokens


async def run_plan(plan: Plan, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Stream a prepared plan: Queued, Think and Answer events, then Done, or Error on failure.

    The round loop: each request continues the text so far. A new round starts when the plan
    ran out of budget (the answer is forced open), when the answer nears its target (the model is
    asked to conclude), or when the model ended far short of its target (continued, held open to
    ``Budget.answer_min``). Rounds are bounded by the token budget, and a continuation that adds
    no words ends the loop. ``plan.stats`` records rounds, the token split, whether the answer was
    forced, how many continuations ran and how the text ended (``ending``)."""
    if plan.rendered.template == "plan":
        from generation.agentwrite import run_agentwrite

        stream = run_agentwrite(plan, cancel=cancel)
    else:
        progress = _Progress(StreamParser(prefilled=plan.prefill.endswith(THINK_OPEN)), TokenLedger(plan.budget),
                             LengthController(plan.request.target_words))
        stream = _loop(plan, progress, cancel=cancel)
    async with aclosing(stream) as events:
        async for event in events:
            yield event


async def _loop(plan: Plan, progress: _Progress, *, cancel: Optional[asyncio.Event]) -> AsyncIterator[Event]:
    parser, ledger, controller, stats = progress.parser, progress.ledger, progress.controller, plan.stats
    stats.setdefault("rounds", 0)
    stats.setdefault("forced_answer", False)
    stats.setdefault("continued", 0)
    if plan.with_think and plan.budget.think == 0 and not progress.answering:
        _force_answer(progress, stats)
    finish: Optional[str] = None
    first_round = stats["rounds"]
    while True:
        call = _call(plan, progress, stats["rounds"])
        if call.max_tokens <= 0:
            finish = finish or "length"
            break
        words_before = count_words(parser.answer)
        stats["rounds"] += 1
        async with aclosing(_round(plan, call, progress, stats["rounds"] - 1 == first_round, cancel)) as events:
            async for event in events:
                yield event
        if progress.failed:
            return
        finish = progress.finish
        if finish == "cancelled" or controller.stop_reason is not None:
            break
        if progress.steer:
            controller.concluding = True
            stats["conclude_at_words"] = controller.words
            continue
        if plan.with_think and parser.state in (START, THINK, BETWEEN):
            if parser.state == START and finish == "stop" and not progress.raw.strip():
                break  # the model wrote nothing at all: nothing to force
            _force_answer(progress, stats)
            finish = "length" if finish is None else finish
            continue
        if finish == "stop" and controller.is_short(parser.answer) and ledger.answer_left > 0:
            if stats["continued"] and count_words(parser.answer) <= words_before:
                break  # a continuation that adds nothing: the model will not write more
            stats["continued"] += 1
            continue
        break
    if controller.stop_reason is not None:
        finish = controller.stop_reason
    elif finish == "stop" and controller.is_short(parser.answer):
        finish = "short"
    stats.update(think_tokens=ledger.think, answer_tokens=ledger.answer,
                 ending=controller.ending(parser.answer, finish))
    if plan.prompt_tokens is None and finish != "cancelled":  # the first request was closed before any usage came
        try:
            plan.prompt_tokens = await plan.backend.prompt_tokens(_probe(plan.rendered, plan.use_chat))
        except BackendError:
            pass  # the row keeps no prompt length rather than failing a finished generation
    for event in parser.close(finish or "length", prompt_tokens=plan.prompt_tokens, completion_tokens=ledger.completion):
        if not (controller.stop_reason is not None and isinstance(event, (Think, Answer))):
            yield event  # text past a target stop stays unsaid


async def stream_generation(entry, request: GenerationRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Generate for ``request`` with ``entry``'s model; no database. Bad requests raise
    UserError at the first iteration, before anything is generated; backend failures while
    streaming come as an Error event. Cancelling (``cancel.set()`` or closing the iterator)
    aborts the server request."""
    plan = await prepare(entry, request)
    async with aclosing(run_plan(plan, cancel=cancel)) as events:
        async for event in events:
            yield event


async def collect_text(entry, request: GenerationRequest, *, failure: str) -> tuple[str, str]:
    """The think and answer text of one ``stream_generation``, with no database; an Error event is a
    UserError reading ``"{failure}: {message}"``."""
    think, answer = [], []
    async with aclosing(stream_generation(entry, request)) as events:
        async for event in events:
            if isinstance(event, Think):
                think.append(event.text)
            elif isinstance(event, Answer):
                answer.append(event.text)
            elif isinstance(event, Error):
                raise UserError(f"{failure}: {event.message}")
    return "".join(think), "".join(answer)


async def generate_and_store(
    engine,
    *,
    model: str,
    request: GenerationRequest,
    author_id: Optional[int] = None,
    category: Optional[str] = None,
    cancel: Optional[asyncio.Event] = None,
    template: Optional[str] = None,
) -> AsyncIterator[Event]:
    """``stream_generation`` with a generations row: yields ``Started(id)`` first, saves the
    partial text at least every 2 s, and finishes the row on every exit path (complete,
    truncated, interrupted on cancel/close/backend death, failed). Bad input raises UserError
    before any row is written. ``template`` overrides the model's own."""
    from generation.recording import GenerationRecorder, lookup_model, recorded

    entry = lookup_model(engine, name=model)
    plan = await prepare(entry, request, template=template)
    recorder = GenerationRecorder.create(engine, entry=entry, request=request, plan_params=plan.params(),
                                         author_id=author_id, category=category)
    async with aclosing(recorded(recorder, run_plan(plan, cancel=cancel), finish=lambda: recorder.finish(extra=plan.stats),
                                 save_interval_s=SAVE_INTERVAL_S)) as events:
        async for event in events:
            yield event


def generate_to_row(engine, **kwargs):
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
