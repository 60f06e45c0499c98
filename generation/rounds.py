"""The one-request templates (``think``, ``direct``): the whole text from one request, continued
in further rounds when needed.

Length control: a target word count sets the answer's token budget from the model's measured
tokens per word (``generation.length``); while the answer streams, a ``LengthController``
(``generation.control``) counts its words, asks the model to conclude as it nears the target,
ends it at the first sentence end past the target (finish reason ``target``, status complete) or
cuts it at 1.2 times the target (``length``, status truncated). A think budget caps the plan:
when it runs out the stream is closed, the answer forced open (the parser says with which text)
and a new request continues from the text so far. An answer that stops far short of its target
is continued the same way, while the token budget lasts; one that still ends short finishes as
``short``.

Public: :func:`prepare_rounds` (the budget), :func:`run_rounds` (a new text) and
:func:`resume_rounds` (a stored text, continued).
"""

from __future__ import annotations

import asyncio
import math
from contextlib import aclosing
from dataclasses import dataclass
from typing import AsyncIterator, Optional

from core.errors import UserError
from generation.backends.base import BackendError, BackendRequest, Delta, Finish
from generation.control import LengthController, TokenLedger
from generation.counting import count_words
from generation.events import Answer, Error, Event, Queued, Think
from generation.length import MAX_FRACTION, MIN_ANSWER_TOKENS, Budget, answer_token_range, plan_budget
from generation.parser import AFTER, ANSWER, ANSWER_CLOSE, BETWEEN, START, THINK, THINK_OPEN, StreamParser, answer_opening
from generation.prepared import Plan, Setup, probe
from generation.stream import stream_request


async def prepare_rounds(setup: Setup) -> Plan:
    """The budget of a one-request text: the answer's from the target (or ``max_tokens``), the
    plan's from the think budget, both within the model's context (UserError with the numbers)."""
    request = setup.request

    def budget_for(prompt_tokens: int) -> Budget:
        return plan_budget(
            target_words=request.target_words, think_budget=request.think_budget, max_tokens=request.max_tokens,
            tokens_per_word=setup.tokens_per_word, with_think=setup.template.thinks, prompt_tokens=prompt_tokens,
            context=setup.context,
        )

    # The exact prompt length is asked for only when it could change the budget: when the upper
    # bound leaves the same budget as an empty prompt would, the prompt is far from the context limit.
    budget, prompt_tokens = _budget_if_fits(budget_for, setup.prompt_tokens_at_most), None
    if budget is None:
        prompt_tokens = await setup.exact_prompt_tokens()
        budget = budget_for(prompt_tokens)
    return Plan.from_setup(setup, budget, prompt_tokens)


def _budget_if_fits(budget_for, at_most: int) -> Optional[Budget]:
    try:
        budget = budget_for(at_most)
    except UserError:
        return None
    return budget if budget == budget_for(0) else None


@dataclass
class Progress:
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


def _force_answer(progress: Progress, stats: dict) -> None:
    progress.raw += answer_opening(progress.parser.state)
    progress.parser.force_answer()
    stats["forced_answer"] = True


def _call(plan: Plan, progress: Progress, round_index: int) -> BackendRequest:
    answering = progress.answering or not plan.with_think
    max_tokens, min_tokens = progress.ledger.limits(answering=answering, steer_min=not progress.controller.concluding)
    rendered = plan.rendered
    if progress.controller.concluding:
        left = progress.controller.words_left()
        rendered = plan.template.render(plan.request.prompt, conclude_within=left)
        cap_words = progress.controller.hard_cap - progress.controller.words
        max_tokens = min(max_tokens, max(MIN_ANSWER_TOKENS, math.ceil(cap_words * plan.tokens_per_word * MAX_FRACTION)))
    return BackendRequest(
        prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant=plan.prefill + progress.raw,
        use_chat=plan.use_chat, max_tokens=max_tokens, min_tokens=min_tokens, temperature=plan.request.temperature,
        top_p=plan.request.top_p, seed=plan.seed + round_index, repetition_penalty=plan.request.repetition_penalty,
        stop=rendered.stop,
        bad_words=rendered.stop if min_tokens else [],
    )


async def _round(plan: Plan, call: BackendRequest, progress: Progress, first: bool,
                 cancel: Optional[asyncio.Event]) -> AsyncIterator[Event]:
    """Stream one request, feeding the parser, the ledger and the length controller. Sets
    ``progress.finish`` (None when the loop closed the stream itself) or ``progress.failed``."""
    parser, ledger, controller = progress.parser, progress.ledger, progress.controller
    progress.finish, progress.steer, round_tokens = None, False, 0
    async with aclosing(stream_request(plan.backend, call, cancel=cancel)) as items:
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
            elif isinstance(item, Error):
                held = controller.flush()
                if held:
                    yield Answer(held)
                yield item
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


def run_rounds(plan: Plan, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """Stream a new one-request text: Queued, Think and Answer events, then Done, or Error.

    The round loop: each request continues the text so far. A new round starts when the plan
    ran out of budget (the answer is forced open), when the answer nears its target (the model is
    asked to conclude), or when the model ended far short of its target (continued, held open to
    ``Budget.answer_min``). Rounds are bounded by the token budget, and a continuation that adds
    no words ends the loop. ``plan.stats`` records rounds, the token split, whether the answer was
    forced, how many continuations ran and how the text ended (``ending``)."""
    progress = Progress(StreamParser(prefilled=plan.prefill.endswith(THINK_OPEN)), TokenLedger(plan.budget),
                        LengthController(plan.request.target_words))
    return _loop(plan, progress, cancel=cancel)


async def resume_rounds(plan: Plan, *, think: str, answer: str,
                        cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    """The round loop for a stored text (``think``, ``answer``), continued (awaited, it returns
    the stream of the new text's events); raises UserError now,
    before anything is generated, when the text no longer fits the model's context.

    A continuation always has room to grow: toward the target when the text has one (a
    ``max_tokens`` cap of the first run then caps what this continuation adds, not the whole
    text), else by another ``max_tokens`` (or the default answer budget)."""
    prefilled = plan.prefill.endswith(THINK_OPEN)
    parser = StreamParser(prefilled=prefilled)
    thinking = plan.with_think and not answer.strip()
    if plan.with_think:
        raw = ("" if prefilled else THINK_OPEN) + think
        raw += "" if thinking else answer_opening(THINK) + answer
        parser.resume(think, "" if thinking else answer)
    else:
        raw = answer
        parser.resume("", answer)
    sent = probe(plan.rendered, plan.use_chat)
    sent.assistant = plan.prefill + raw
    try:
        prompt_tokens, text_tokens = await asyncio.gather(plan.backend.prompt_tokens(sent),
                                                          plan.backend.count_tokens(plan.prefill + raw))
    except BackendError as exc:
        raise UserError(str(exc)) from None
    room = plan.context - prompt_tokens
    if room < MIN_ANSWER_TOKENS:
        raise UserError(f"its text so far is {text_tokens:,} tokens ({prompt_tokens:,} with the prompt), "
                        f"and the model's context is {plan.context:,} tokens")
    target, cap = plan.request.target_words, plan.request.max_tokens
    ledger = TokenLedger(plan.budget)
    if target is None:  # no target: a fresh answer budget, within what the context leaves
        budget = Budget(think=plan.budget.think, answer_max=plan.budget.answer_max, answer_min=0)
    else:
        answer_min, answer_max = answer_token_range(target, plan.tokens_per_word)
        ledger.answer = await plan.backend.count_tokens(answer) if answer else 0
        if cap is not None:
            answer_max = min(answer_max, ledger.answer + cap)
        budget = Budget(think=plan.budget.think, answer_max=answer_max, answer_min=min(answer_min, answer_max))
    ledger.budget = budget
    ledger.think = budget.think if not thinking else await plan.backend.count_tokens(think)
    spare = max(0, room - max(0, budget.think - ledger.think))
    if ledger.answer_left > spare:
        ledger.budget = Budget(budget.think, ledger.answer + spare, min(budget.answer_min, ledger.answer + spare))
    controller = LengthController(target)
    controller.words = count_words(answer)
    if controller.should_steer():
        controller.concluding = True
    return _loop(plan, Progress(parser, ledger, controller, raw=raw), cancel=cancel)


async def _loop(plan: Plan, progress: Progress, *, cancel: Optional[asyncio.Event]) -> AsyncIterator[Event]:
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
            plan.prompt_tokens = await plan.backend.prompt_tokens(probe(plan.rendered, plan.use_chat))
        except BackendError:
            pass  # the row keeps no prompt length rather than failing a finished generation
    for event in parser.close(finish or "length", prompt_tokens=plan.prompt_tokens, completion_tokens=ledger.completion):
        if not (controller.stop_reason is not None and isinstance(event, (Think, Answer))):
            yield event  # text past a target stop stays unsaid
