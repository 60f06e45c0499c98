"""The table of templates: each one registered once, with how it renders a request, prepares
its budget, runs, and resumes a stored text. Every other module asks this table; none asks a
template's name.

- ``think``: the LongWriter-Zero protocol (``generation.rendering``), one request, a plan
  (``<think>``) then the answer, continued in rounds (``generation.rounds``).
- ``direct``: the text at once, one request, continued in rounds.
- ``plan``: LongWriter's AgentWrite (``generation.agentwrite``): a plan of sections, then the
  sections written in turn. For texts longer than a model holds in one request.
- ``auto``: the length decides. Up to the number of words the model holds in one request (the
  model entry's ``one_request_words``, measured per model) the text is written in one request
  (``direct``); above it, planned in sections (``plan``). :func:`choose` says which, and why.

The writer may override the model's template with a *method* (:data:`METHODS`): ``auto`` (the
model's own), ``one request`` or ``plan``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Optional

from core.errors import UserError
from generation.agentwrite import check_reachable, default_plan_tokens, render_plan_step, run_agentwrite
from generation.events import Event
from generation.length import DEFAULT_ANSWER_TOKENS, Budget, answer_token_range
from generation.prepared import Plan, Setup
from generation.rendering import Rendered, language_of, render_direct, render_think
from generation.rounds import prepare_rounds, resume_rounds, run_rounds

ONE_REQUEST_WORDS = "one_request_words"
"""The model entry's setting (in ``ModelEntry.sampling``): how many words the model writes well in
one request. ``auto`` plans above it."""
DEFAULT_TEMPLATE = "think"
"""A new model entry's template unless said otherwise (the bundled model has its own: ``generation.bundled``)."""


@dataclass(frozen=True)
class Template:
    """One template: its name, what it is for, and the functions that make it work.

    ``render(prompt, conclude_within=None)`` gives the first request; ``prepare(setup)`` the
    checked :class:`Plan`; ``run(plan, cancel=)`` the events of a new text; ``resume(plan,
    think=, answer=, sections=, cancel=)``, awaited, the events of a stored text continued
    (UserError before anything is generated when it cannot be). ``choose(target, holds)`` is set
    only for a template that picks another by length (``auto``)."""

    name: str
    summary: str
    render: Callable[..., Rendered]
    prepare: Callable[[Setup], Awaitable[Plan]]
    run: Callable[..., AsyncIterator[Event]]
    resume: Callable[..., Awaitable[AsyncIterator[Event]]]
    thinks: bool = False
    """Whether the text starts with a plan the model writes by itself (``<think>``)."""
    one_request: bool = True
    """Whether the whole text comes from one request (continued in rounds), not planned in sections."""
    in_one: Optional[str] = None
    """The template the method ``one request`` uses for a model registered with this one (default: itself)."""
    choose: Optional[Callable[[Optional[int], Optional[int]], tuple[str, str]]] = None


async def _resume_rounds(plan: Plan, *, think: str, answer: str, sections: list, cancel=None):
    return await resume_rounds(plan, think=think, answer=answer, cancel=cancel)


async def _prepare_plan(setup: Setup) -> Plan:
    """The plan template's checks: every section request must fit the context, not the whole text."""
    request = setup.request
    think = request.think_budget if request.think_budget is not None else default_plan_tokens(request.target_words)
    prompt_tokens = None
    reach = dict(target=request.target_words, plan_tokens=think, tokens_per_word=setup.tokens_per_word,
                 context=setup.context)
    try:
        check_reachable(prompt_tokens=setup.prompt_tokens_at_most, **reach)
    except UserError:
        prompt_tokens = await setup.exact_prompt_tokens()
        check_reachable(prompt_tokens=prompt_tokens, **reach)
    if request.target_words is not None:
        answer_min, answer_max = answer_token_range(request.target_words, setup.tokens_per_word)
    else:
        answer_min, answer_max = 0, request.max_tokens or DEFAULT_ANSWER_TOKENS
    return Plan.from_setup(setup, Budget(think, answer_max, answer_min), prompt_tokens)


def _run_plan(plan: Plan, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[Event]:
    return run_agentwrite(plan, cancel=cancel)


async def _resume_plan(plan: Plan, *, think: str, answer: str, sections: list, cancel=None):
    return run_agentwrite(plan, cancel=cancel, start={"think": think, "answer": answer, "sections": sections})


def _render_plan(prompt: str, *, conclude_within: Optional[int] = None) -> Rendered:
    return render_plan_step(prompt, language_of(prompt))


def _by_length(target: Optional[int], holds: Optional[int]) -> tuple[str, str]:
    """``auto``: one request up to what the model holds, planned in sections above it."""
    if holds is None:
        raise UserError(f"the auto template needs the length the model holds in one request ({ONE_REQUEST_WORDS}); "
                        "register it with --one-request-words N, or pick one request or plan")
    if target is None:
        return "direct", "no target: written in one request"
    if target > holds:
        return "plan", f"{target:,} words > {holds:,} this model holds in one request: planned in sections"
    return "direct", f"{target:,} words ≤ {holds:,} this model holds in one request: written in one request"


def _one_request(name: str, render) -> dict[str, Any]:
    return dict(render=lambda prompt, conclude_within=None: render(name, prompt, conclude_within=conclude_within),
                prepare=prepare_rounds, run=run_rounds, resume=_resume_rounds)


TEMPLATES: dict[str, Template] = {t.name: t for t in (
    Template("think", "the model plans by itself (<think>), then writes in one request", thinks=True,
             **_one_request("think", render_think)),
    Template("direct", "the text at once, in one request", **_one_request("direct", render_direct)),
    Template("plan", "a numbered plan of sections, then each section to its word budget (for long texts)",
             render=_render_plan, prepare=_prepare_plan, run=_run_plan, resume=_resume_plan, one_request=False,
             in_one="direct"),
    Template("auto", "one request up to the length the model holds, planned in sections above it",
             in_one="direct", choose=_by_length, **_one_request("direct", render_direct)),
)}
TEMPLATE_NAMES = tuple(TEMPLATES)
METHODS = ("auto", "one request", "plan")
"""What a writer may pick: the model's own template (``auto``), one request, or a plan of sections."""


@dataclass(frozen=True)
class Choice:
    """The template that writes a text, and why it was picked (shown to the writer, kept in the row)."""

    template: Template
    asked: str
    why: str

    def record(self) -> dict[str, str]:
        return {"asked": self.asked, "why": self.why}


def template_named(name: str) -> Template:
    """The registered template, or UserError naming the registered ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UserError(f"unknown template {name!r}: use one of {', '.join(TEMPLATE_NAMES)}") from None


def method_template(method: Optional[str], model_template: str) -> Optional[str]:
    """The template a writer's method stands for, for a model registered with ``model_template``;
    None for ``auto`` (the model's own)."""
    if method in (None, "", METHODS[0]):
        return None
    if method == METHODS[1]:
        own = template_named(model_template)
        return own.in_one or own.name
    if method == METHODS[2]:
        return "plan"
    raise UserError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")


def choose(name: str, *, target_words: Optional[int], holds_words: Optional[int], by_writer: bool = False) -> Choice:
    """The template that writes a text asked of a template ``name`` (the model's, or the writer's
    pick when ``by_writer``), with the reason in words."""
    asked = template_named(name)
    if asked.choose is not None:
        picked, why = asked.choose(target_words, holds_words)
        return Choice(template_named(picked), asked.name, why)
    how = "written in one request" if asked.one_request else "planned in sections"
    who = "chosen by you" if by_writer else f"this model's template is {asked.name}"
    if asked.one_request and target_words is not None and holds_words is not None and target_words > holds_words:
        how += f" ({target_words:,} words > {holds_words:,} this model holds in one request: it may loop or break down)"
    return Choice(asked, asked.name, f"{who}: {how}")


def holds_words(settings: Optional[dict]) -> Optional[int]:
    """The words a model holds in one request, from its entry's settings (None: not measured)."""
    value = (settings or {}).get(ONE_REQUEST_WORDS)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def render(template: str, prompt: str, *, conclude_within: Optional[int] = None) -> Rendered:
    """Render ``prompt`` with the named template's first request. Raises UserError for an unknown name."""
    return template_named(template).render(prompt, conclude_within=conclude_within)


def check_one_request_words(value: Any) -> None:
    """UserError unless ``value`` is None or a positive whole number of words."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserError(f"the one-request length must be a positive whole number of words, got {value!r}")


__all__ = ["Template", "TEMPLATES", "TEMPLATE_NAMES", "METHODS", "Choice", "choose", "method_template",
           "template_named", "render", "holds_words", "ONE_REQUEST_WORDS", "check_one_request_words"]
