"""The ``plan`` template: plan-then-write, the AgentWrite pipeline of LongWriter (arXiv 2408.07055),
for models that do not think by themselves or cannot write long in one request.

1. Planning. A text of up to SECTIONS_PER_PART sections is planned in one list of sections; a
   longer one in levels: a list of parts, then each part's sections, one list per part. Each
   planning request starts the assistant turn inside the list (the lines so far and the next
   line's opening), so the model goes on with the list rather than answering in prose. A list
   that comes back short is asked for again until it is complete or RETRIES requests in a row
   add nothing; then the text has fewer, longer sections (a part without any is one section
   with the part's point; a text of at most MAX_SECTION_WORDS whose model wrote no plan at all is
   one section with the request as its point). No section is ever made up without a point. The outline streams as
   the think part, one part at a time, in the form ``generation.planning`` reads back, and
   names its last section as the conclusion.
2. Writing. The sections are written in turn, one request each, to their budgets; each request
   holds the request, a bounded view of the outline (the parts, and the sections around this
   one) and the tail of the text so far, so it stays within the model's context at any length.
   A section is shown up to its last complete sentence (``SentenceGate``): one cut by a cap
   ends on a sentence end, never mid-word. The last section is asked to conclude the piece.
   A section the loop guard stops (``looping``) keeps what the guard saw, and writing goes on with
   the next section at a higher repetition penalty (PENALTY_STEP, up to MAX_PENALTY); a last
   section that loops is written again, so the text still gets its ending. LOOPS_IN_A_ROW such
   sections in a row stop the text as ``looping`` (a continuation resumes it).

One stored generation: ``plan.stats["plan"]`` gives the outline (point, budget, part, the ending)
and ``plan.stats["sections"]`` per-section figures (point, budget, the words asked for, words, how it
ended, where it sits in the answer), and ``plan.stats["loops"]`` the sections the loop guard stopped (where, and
the penalty that followed). A continuation resumes at the first section not yet written.
"""

from __future__ import annotations

import asyncio
import math
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, AsyncIterator, Callable, Optional, Union

from core.errors import UserError
from generation.backends.base import BackendRequest, Delta, Finish
from generation.control import (BROKE_DOWN, CONCLUDED, CUT, LOOPING, NATURAL, SHORT, LengthController, SentenceGate,
                                last_sentence_end)
from generation.counting import count_words
from generation.events import Answer, Done, Error, Event, Queued, Think
from generation.length import MAX_FRACTION, SHORT_FRACTION
from generation.rendering import Rendered
from generation.stream import stream_request
from generation.planning import (BUDGET_SPREAD, MAX_SECTION_WORDS, MAX_SECTIONS, POINT_WORDS, SECTION_WORDS, Item,
                                 Outline, Section, max_sections, numbered, part_block, part_count, parse_items,
                                 parts_line, point_key, read_outline, request_point, section_count, split_budget,
                                 spread)

if TYPE_CHECKING:
    from generation.prepared import Plan

PLAN_TOKENS_PER_SECTION = 48
"""The token budget of one plan line (a line each, with room)."""
MIN_PLAN_TOKENS = PLAN_TOKENS_PER_SECTION + 64
"""The smallest think budget the template accepts: one planning request of one line."""
PLAN_BATCH = 12
"""At most this many plan lines are asked for in one request."""
RETRIES = 2
"""A list is asked for again at most this many times in a row when a request adds no new line."""
FIRST_RETRIES = 6
"""...and this many times while it has no line yet: the bundled model, asked to go on from
"Section 1 - Main point:", answers one line of prose, a usable point, about three times in four,
and a placeholder, chatter or nothing otherwise; three misses in a row left 3 of about 40 texts
with no plan at all (LongBench-Write through vLLM, 2026-12-07). The think budget still bounds it."""
TAIL_WORDS = 400
"""How much of the text so far each section request carries (its end)."""
WINDOW = 3
"""A section request's outline lists the sections of its part this many places around it."""
SECTION_MIN_SHARE = 0.6
"""A section is held open to this share of its budget (min_tokens)."""
SEPARATOR = "\n\n"
PROMPT_SLACK_WORDS = 64
"""Added to a section request's words when its length in tokens is estimated (markup, numbers)."""
PENALTY_STEP = 0.05
"""After a section the loop guard stopped, the repetition penalty of the sections that follow
rises by this much (from the request's, or 1.0 without one)..."""
MAX_PENALTY = 1.2
"""...up to this (the bundled model breaks into nonsense at 1.2 in one request; a section is
short, and a loop is worse)."""
MIN_ENDING_WORDS = 80
"""A last section written again after a loop asks for at least this many words."""
LOOPS_IN_A_ROW = 2
"""This many sections in a row stopped by the loop guard, even at the raised penalty, stop the text
as ``looping``."""

_SYSTEM = {
    "en": "You are a skilled writer who plans long pieces before writing them, section by section.",
    "zh": "你是一位出色的写作者，先规划长篇作品，再逐节写作。",
}
_PARTS_ASK = {
    "en": "Writing request: {prompt}\n\nThe piece will be about {words:,} words long. Divide it into {k} parts, one "
          "line each, in this form:\nPart 1 - Main point: <what this part covers>\nEach part covers something of "
          "its own; the last part brings the piece to its ending. Write only the {k} lines.",
    "zh": "写作要求：{prompt}\n\n全文约{words}字。请把它分为{k}个部分，每部分一行，格式如下：\n第1部分 - 要点：<这一部分写什么>\n"
          "各部分内容互不重复；最后一部分为全文收尾。只写这{k}行。",
}
_SECTIONS_ASK = {
    "en": "Writing request: {prompt}\n\n{parts}Plan {scope} as {n} numbered sections, one line each, in this form:\n"
          "Section {first} - Main point: <what the section says> - Word count: <number> words\n"
          "Each section says something of its own. The word counts must add up to {words:,} words.{ending} "
          "Write only the plan.",
    "zh": "写作要求：{prompt}\n\n{parts}请把{scope}规划为{n}个编号的小节，每节一行，格式如下：\n"
          "第{first}节 - 要点：<这一节写什么> - 字数：<数字>字\n每节内容各不相同，各节字数之和为{words}字。{ending}只写规划。",
}
_SCOPE = {"en": ("this piece", 'part {j} of {k} ("{point}")'), "zh": ("这篇作品", "第{j}部分（共{k}部分，“{point}”）")}
_PARTS_CONTEXT = {"en": "The piece is planned in {k} parts:\n{lines}\n\n", "zh": "全文分为{k}个部分：\n{lines}\n\n"}
_PART_LINE = {"en": "Part {j}: {point}", "zh": "第{j}部分：{point}"}
_ENDING_ASK = {"en": " The last section is the conclusion of the whole piece.", "zh": "最后一节是全文的结尾。"}
_OPENING = {"en": {"part": "Part {i} - Main point:", "section": "Section {i} - Main point:"},
            "zh": {"part": "第{i}部分 - 要点：", "section": "第{i}节 - 要点："}}
_COUNT = {"en": " - Word count: {words} words", "zh": " - 字数：{words}字"}
PLAN_STOP = "\n\n"
"""A planning reply ends at its first blank line: a list has none, the prose a small model drifts
into after it does."""
_SECTION_ASK = {
    "en": "Writing request: {prompt}\n\nOutline:\n{outline}\n\n{so_far}Now write section {i} of {n}: {point}\n"
          "Write about {words} words. Continue the text; do not repeat it; no title, no notes, only this "
          "section.{last}",
    "zh": "写作要求：{prompt}\n\n提纲：\n{outline}\n\n{so_far}现在写第{i}节（共{n}节）：{point}\n"
          "大约写{words}字。接着上文写，不要重复，不要标题和说明，只写这一节。{last}",
}
_THIS = {"en": "  <- this section", "zh": "  ←本节"}
_SO_FAR = {"en": "The text so far ends:\n...{tail}\n\n", "zh": "已写正文的结尾：\n……{tail}\n\n"}
_LAST = {"en": " This is the last section: bring the piece to a complete ending.", "zh": "这是最后一节：请让全文完整地收尾。"}
_NO_PLAN = {
    "budget": "the think budget ({tokens:,} tokens) ran out before the model wrote a plan; ask for a larger think "
              "budget or leave it out",
    "model": "the model wrote no plan: none of its {requests} replies had a numbered line with a main point; "
             "try again, or use a model that follows instructions more closely",
}


def default_plan_tokens(target: Optional[int]) -> int:
    """The planning budget (all planning requests together): every line with room, twice over
    for lists that must be asked for again."""
    n = section_count(target)
    k = part_count(n)
    return 2 * ((n + (k if k > 1 else 0)) * PLAN_TOKENS_PER_SECTION + 64 * (k + 1))


def outline_tokens(tokens_per_word: float, *, planning: bool = False) -> int:
    """The most tokens the outline in one request takes, every line at its longest point: the
    parts and the sections around the one being written, or (``planning``) the parts and the
    lines planned so far that a planning request shows."""
    lines = part_count(MAX_SECTIONS) + (PLAN_BATCH if planning else 2 * WINDOW + 1)
    return lines * math.ceil((POINT_WORDS + 6) * tokens_per_word)


def section_tokens(words: int, tokens_per_word: float) -> int:
    """The token cap of a section request: room for ``words`` words, and never more than a
    section of MAX_SECTION_WORDS (a part the model gave no sections is one long section; its
    request must still fit the context that :func:`check_reachable` checked)."""
    return max(16, math.ceil(min(words, MAX_SECTION_WORDS) * tokens_per_word * MAX_FRACTION) + 8)


def check_reachable(*, target: Optional[int], plan_tokens: int, prompt_tokens: int, tokens_per_word: float,
                    context: int) -> None:
    """UserError, with the numbers, when the template cannot reach ``target``: sections past
    MAX_SECTION_WORDS, a think budget too small for any plan, or a request (prompt, outline view,
    tail of the text, the section; or a planning request's lines) that does not fit the model's
    context. ``plan_tokens`` (the think budget) spans all planning requests; no one request asks
    for more than PLAN_BATCH lines."""
    if target and target / MAX_SECTIONS > MAX_SECTION_WORDS:
        raise UserError(f"the plan template writes at most {MAX_SECTIONS} sections of {MAX_SECTION_WORDS:,} words "
                        f"({MAX_SECTIONS * MAX_SECTION_WORDS:,} words); {target:,} is beyond it: ask for fewer words")
    if plan_tokens < MIN_PLAN_TOKENS:
        raise UserError(f"the plan template writes from a plan: a think budget of {plan_tokens:,} tokens cannot hold "
                        f"one (at least {MIN_PLAN_TOKENS:,}); ask for a larger think budget or leave it out")
    outline = outline_tokens(tokens_per_word)
    section_words = math.ceil((target or SECTION_WORDS * section_count(None)) / section_count(target))
    tail = math.ceil(TAIL_WORDS * tokens_per_word)
    section = section_tokens(section_words, tokens_per_word)
    need = 2 * prompt_tokens + outline + tail + section + 128
    if need > context:
        raise UserError(f"a section request of the plan template needs up to {need:,} tokens (the request twice, "
                        f"{prompt_tokens:,} each, the outline {outline:,}, the text's tail {tail:,}, the section "
                        f"{section:,}), more than the model's context of {context:,} tokens; ask for fewer words")
    reply = min(plan_tokens, PLAN_BATCH * PLAN_TOKENS_PER_SECTION + 64)
    planning = prompt_tokens + outline_tokens(tokens_per_word, planning=True) + reply + 128
    if planning > context:
        raise UserError(f"a planning request of the plan template needs up to {planning:,} tokens, more than the "
                        f"model's context of {context:,} tokens; ask with a shorter request")


def _rendered(lang: str, user: str, prefill: str = "") -> "Rendered":
    system = _SYSTEM[lang]
    return Rendered("plan", lang, f"{system}\n\n{user}\n\n", system, user, prefill, [PLAN_STOP] if prefill else [])


def _list_so_far(lang: str, kind: str, have: list[Item], first: int) -> str:
    """The assistant turn a planning request starts from: the lines planned so far in this list
    (its last PLAN_BATCH) and the opening of the next one, which the model goes on from. A small
    model that answers a request for a plan with prose keeps to the list when it is already in it."""
    shown = have[-PLAN_BATCH:]
    start = first + len(have) - len(shown)
    space = " " if lang == "en" else ""
    lines = [_OPENING[lang][kind].format(i=start + k) + space + item.point
             + (_COUNT[lang].format(words=item.words) if item.words and kind == "section" else "")
             for k, item in enumerate(shown)]
    return "\n".join([*lines, _OPENING[lang][kind].format(i=first + len(have))])


def render_plan_step(prompt: str, lang: str, target: Optional[int] = None) -> "Rendered":
    """The first planning request: the parts of a long text, or the sections of a short one."""
    n = section_count(target)
    total = target or n * SECTION_WORDS
    if part_count(n) > 1:
        return render_parts_step(prompt, lang, total=total, parts=part_count(n), have=[])
    return render_sections_step(prompt, lang, parts=(), part=None, sections=n, words=total, first=1, ending=True,
                                have=[])


def render_parts_step(prompt: str, lang: str, *, total: int, parts: int, have: list[Item]) -> "Rendered":
    """A request for the parts of the text (``have``: those planned already)."""
    user = _PARTS_ASK[lang].format(prompt=prompt, words=total, k=parts)
    return _rendered(lang, user, _list_so_far(lang, "part", have, 1))


def render_sections_step(prompt: str, lang: str, *, parts: tuple[str, ...], part: Optional[int], sections: int,
                         words: int, first: int, ending: bool, have: list[Item]) -> "Rendered":
    """A request for the sections of the whole text (``part`` None) or of one part, numbered
    from ``first``; ``ending``: the list ends the text, so its last section is the conclusion."""
    whole, one = _SCOPE[lang]
    context = ""
    scope = whole
    if part is not None:
        lines = "\n".join(_PART_LINE[lang].format(j=j, point=p) for j, p in enumerate(parts, 1))
        context = _PARTS_CONTEXT[lang].format(k=len(parts), lines=lines)
        scope = one.format(j=part + 1, k=len(parts), point=parts[part])
    user = _SECTIONS_ASK[lang].format(prompt=prompt, parts=context, scope=scope, n=sections, first=first,
                                      words=words, ending=_ENDING_ASK[lang] if ending else "")
    return _rendered(lang, user, _list_so_far(lang, "section", have, first))


def outline_view(lang: str, outline: Outline, index: int) -> str:
    """The outline as a section request shows it: every part, and under the current one the
    sections within WINDOW places of section ``index`` (bounded at any length)."""
    current = outline.sections[index]
    lines = [f"{i + 1}. {s.point}" + (_THIS[lang] if i == index else "")
             for i, s in enumerate(outline.sections) if s.part == current.part and abs(i - index) <= WINDOW]
    if not outline.parts:
        return "\n".join(lines)
    view = []
    for j, point in enumerate(outline.parts):
        view.append(_PART_LINE[lang].format(j=j + 1, point=point))
        if j == current.part:
            view.extend("   " + line for line in lines)
    return "\n".join(view)


def render_section_step(prompt: str, lang: str, *, outline: Outline, index: int, text_so_far: str,
                        budget: Optional[int] = None) -> "Rendered":
    """Writing section ``index`` (0-based): the request, the outline view, the tail of the text so
    far; ``budget``: its words, when not the outline's (see :func:`section_budget`)."""
    words = text_so_far.split()
    tail = " ".join(words[-TAIL_WORDS:]) if lang == "en" else text_so_far[-TAIL_WORDS * 2:]
    section = outline.sections[index]
    n = len(outline.sections)
    user = _SECTION_ASK[lang].format(
        prompt=prompt, outline=outline_view(lang, outline, index),
        so_far=_SO_FAR[lang].format(tail=tail) if tail.strip() else "", i=index + 1, n=n, point=section.point,
        words=section.words if budget is None else budget, last=_LAST[lang] if index == n - 1 else "")
    return _rendered(lang, user)


@dataclass
class _Outcome:
    finish: Optional[str] = None
    tokens: int = 0
    error: bool = False


@dataclass
class _Run:
    """What one run carries between its requests."""

    plan: "Plan"
    cancel: Optional[asyncio.Event]
    think_left: int = 0
    completion: int = 0
    penalty: Optional[float] = None
    """The repetition penalty of the next request (raised after a section that looped)."""
    stopped: Optional[str] = None
    """``error`` or ``cancelled``: the run ends."""

    async def send(self, rendered: "Rendered", *, max_tokens: int, min_tokens: int, out: _Outcome
                   ) -> AsyncIterator[Union[Event, str]]:
        """One request: its text (str) and Queued/Error events; fills ``out``."""
        stats = self.plan.stats
        first = stats["rounds"] == 0
        call = _request(self.plan, rendered, max_tokens=max_tokens, min_tokens=min_tokens, penalty=self.penalty)
        stats["rounds"] += 1
        try:
            async with aclosing(_stream(self.plan, call, out, self.cancel, first=first)) as items:
                async for item in items:
                    yield item
        finally:  # also when the caller stops reading (a section stopped at its length)
            self.completion += out.tokens
        if out.error:
            self.stopped = "error"
        elif out.finish == "cancelled":
            self.stopped = "cancelled"


async def _gather(run: _Run, ask: Callable[..., "Rendered"], *, want: int, limit: int, items: list[Item],
                  seen: set[str]) -> AsyncIterator[Event]:
    """Ask for a list (``ask(have=...)`` renders the request) until it has ``want`` new points (up
    to ``limit`` when the model gives more), while requests add something, RETRIES times in a row at most, and the think budget lasts.
    Points already in ``seen`` (anywhere in the plan) do not count twice."""
    lang = run.plan.rendered.language
    failures = 0
    while len(items) < want and failures <= (RETRIES if items else FIRST_RETRIES):
        max_tokens = min(run.think_left, min(want - len(items), PLAN_BATCH) * PLAN_TOKENS_PER_SECTION + 64)
        if max_tokens < PLAN_TOKENS_PER_SECTION:
            return
        out, reply, rendered = _Outcome(), [], ask(have=items)
        async with aclosing(run.send(rendered, max_tokens=max_tokens, min_tokens=0, out=out)) as stream:
            async for item in stream:
                if isinstance(item, str):
                    reply.append(item)
                else:
                    yield item
        run.think_left -= out.tokens
        if run.stopped:
            return
        added = 0
        text = "".join(reply)
        opening = rendered.prefill.rsplit("\n", 1)[-1]  # the line the model was to finish
        for item in parse_items(text if numbered(text) else opening + text, lang):
            key = point_key(item.point)
            if key and key not in seen and len(items) < limit:
                seen.add(key)
                items.append(item)
                added += 1
        failures = 0 if added else failures + 1


async def _plan_outline(run: _Run, found: list[Outline]) -> AsyncIterator[Event]:
    """Plan the text (see the module docstring); streams the outline as Think events and puts it
    in ``found``, or yields an Error when the model wrote no plan at all."""
    plan = run.plan
    prompt, lang, target = plan.request.prompt, plan.rendered.language, plan.request.target_words
    n = section_count(target)
    total = target or n * SECTION_WORDS
    requests_before = plan.stats["rounds"]
    parts: list[Item] = []
    if part_count(n) > 1:
        k = part_count(n)
        ask = partial(render_parts_step, prompt, lang, total=total, parts=k)
        async for event in _gather(run, ask, want=k, limit=k, items=parts, seen=set()):
            yield event
        if run.stopped:
            return
    levels = len(parts) > 1
    part_points = tuple(p.point for p in parts) if levels else ()
    sizes = spread(n, len(parts)) if levels else [n]
    words = split_budget(sizes, total)
    if levels:
        yield Think(parts_line(lang, part_points) + "\n\n")
    seen: set[str] = set()
    sections: list[Section] = []
    spare = max_sections(total) - n
    for j, (size, part_words) in enumerate(zip(sizes, words)):
        items: list[Item] = []
        ending = j == len(sizes) - 1
        ask = partial(render_sections_step, prompt, lang, parts=part_points, part=j if levels else None,
                      sections=size, words=part_words, first=len(sections) + 1, ending=ending)
        async for event in _gather(run, ask, want=size, limit=size + max(0, min(size, spare)), items=items, seen=seen):
            yield event
        if run.stopped:
            return
        spare -= max(0, len(items) - size)
        if not items and levels:
            items = [parts[j]]
        if not items and part_words <= MAX_SECTION_WORDS and run.think_left >= PLAN_TOKENS_PER_SECTION:
            # a text one section can hold, whose model wrote no plan: the request is its one point
            point = request_point(prompt, lang, part_words)
            items = [point] if point else []
            plan.stats["plan_from_request"] = bool(point)
        if not items:
            key = "budget" if run.think_left < PLAN_TOKENS_PER_SECTION else "model"
            run.stopped = "error"
            yield Error(_NO_PLAN[key].format(tokens=plan.budget.think, requests=plan.stats["rounds"] - requests_before))
            return
        budgets = split_budget([item.words for item in items], part_words, spread_limit=BUDGET_SPREAD)
        block = [Section(item.point, budget, j) for item, budget in zip(items, budgets)]
        yield Think(part_block(lang, part=j if levels else None, point=part_points[j] if levels else "",
                               sections=block, first=len(sections) + 1, ending=ending) + ("\n" if not ending else ""))
        sections.extend(block)
    found.append(Outline(part_points, tuple(sections)))


def section_budget(planned: int, owed: float, remaining: int, *, again: bool = False) -> int:
    """The words section asks for: its planned budget and its share of what the text owes its
    plan (``owed``: the budgets of the sections written so far less their words, negative when
    they ran over), spread over the ``remaining`` sections, this one included; held within
    [planned / 2, 2 x planned] and MAX_SECTION_WORDS. A section that looped is short, and without
    this the text would end short by what it lost. ``again``: a last section written again after
    a loop asks only for what is owed (at least MIN_ENDING_WORDS)."""
    if again:
        return int(min(MAX_SECTION_WORDS, max(MIN_ENDING_WORDS, owed)))
    share = owed / max(1, remaining)
    return int(min(MAX_SECTION_WORDS, 2 * planned, max(planned / 2, planned + share)))


def before_loop(text: str, words: int) -> str:
    """``text`` up to where it started looping (its first ``words`` words, as
    ``generation.counting`` counts them), trimmed back to its last sentence end."""
    low, high = 0, len(text)
    while low < high:  # the shortest prefix that reaches into the next word (the loop's first)
        middle = (low + high) // 2
        if count_words(text[:middle]) > words:
            high = middle
        else:
            low = middle + 1
    return text[:last_sentence_end(text[:low])]


def _section_ending(controller: LengthController, finish: Optional[str], last: bool) -> str:
    """How a section ended. The last one, asked to conclude from its start, is ``concluded`` when
    the model ended it or it reached its budget at a sentence end; a cap (the hard word cap or the
    token cap) makes any section ``cut``; a break-down is ``broke_down``; the loop guard's stop
    is ``looping``."""
    if controller.stop_reason == "degenerate":
        return BROKE_DOWN
    if controller.stop_reason == LOOPING:
        return LOOPING
    if controller.stop_reason == "length" or (controller.stop_reason is None and finish == "length"):
        return CUT
    if last:
        return CONCLUDED
    return CUT if controller.stop_reason == "target" else NATURAL


async def run_agentwrite(plan: "Plan", *, cancel: Optional[asyncio.Event] = None, start: Optional[dict] = None
                         ) -> AsyncIterator[Event]:
    """Stream a ``plan``-template generation. ``start`` (a continuation) holds the stored plan
    text, the answer so far and the sections already written: writing resumes at the next one."""
    request, stats = plan.request, plan.stats
    lang, target = plan.rendered.language, request.target_words
    stats.setdefault("rounds", 0)
    run = _Run(plan, cancel, think_left=plan.budget.think, penalty=request.repetition_penalty)
    done_sections: list[dict] = list((start or {}).get("sections", []))
    answer = (start or {}).get("answer", "")
    if start is None:
        found: list[Outline] = []
        async with aclosing(_plan_outline(run, found)) as events:
            async for event in events:
                yield event
        if run.stopped == "cancelled":
            yield Done("cancelled", plan.prompt_tokens, run.completion)
        if run.stopped:
            return
        outline = found[0]
    else:
        outline = read_outline(start.get("think", ""), target, lang)
    sections = outline.sections
    stats["plan"] = outline.records()
    finish, ending = "stop", NATURAL
    loops: list[dict] = stats.setdefault("loops", [])
    in_a_row = 0
    index = len(done_sections)
    # the text so far as the next section request sees it: the answer without the loops the guard
    # stopped (a tail that ends in a loop asks the model to go on with it)
    context = answer
    owed = sum(s["budget"] - s["words"] for s in done_sections)
    again = False
    while index < len(sections):
        section, last = sections[index], index == len(sections) - 1
        budget = section_budget(section.words, owed, len(sections) - index, again=again)
        rendered = render_section_step(request.prompt, lang, outline=outline, index=index, text_so_far=context,
                                       budget=budget)
        room = plan.context - math.ceil((count_words(rendered.raw) + PROMPT_SLACK_WORDS) * plan.tokens_per_word * 1.25)
        max_tokens = max(16, min(section_tokens(budget, plan.tokens_per_word), room))
        min_tokens = min(max_tokens, math.floor(budget * plan.tokens_per_word * SECTION_MIN_SHARE))
        controller = LengthController(budget, steer=False, concluding=last)
        gate = SentenceGate()
        out = _Outcome()
        fed = section_text = ""
        lead = SEPARATOR if answer else ""  # a section starts on a paragraph of its own
        async with aclosing(run.send(rendered, max_tokens=max_tokens, min_tokens=min_tokens, out=out)) as items:
            async for text in items:
                if not isinstance(text, str):
                    yield text
                    continue
                if not fed:
                    text = text.lstrip()
                    if not text:
                        continue
                fed += text
                shown = gate.feed(controller.feed(text, fed, 1))
                if shown:
                    shown = shown if section_text else lead + shown
                    section_text += shown
                    yield Answer(shown)
                if controller.stop_reason is not None:
                    break
        natural = controller.stop_reason is None and out.finish == "stop"
        rest = gate.feed(controller.flush()) + gate.close(natural=natural)
        if rest:
            rest = rest if section_text else lead + rest
            section_text += rest
            yield Answer(rest)
        begin = len(answer) + (len(lead) if section_text else 0)
        answer += section_text
        planned = 0 if again else section.words  # a last section written again was planned once
        written = count_words(section_text)
        owed += planned - written
        done_sections.append({"point": section.point, "budget": planned, "asked": budget, "words": written,
                              "finish": controller.stop_reason or out.finish or "length",
                              "start": begin, "end": len(answer)})
        stats["sections"] = done_sections
        if run.stopped == "error":
            return
        if run.stopped == "cancelled":
            finish, ending = "cancelled", None
            break
        ending = _section_ending(controller, out.finish, last)
        if ending != LOOPING:
            context += section_text
            in_a_row = 0
            index += 1
            continue
        in_a_row += 1
        at = controller.guard.looping_at or 0
        context += before_loop(section_text, at)
        loops.append({"section": index + 1, "at_words": count_words(answer[:begin]) + at,
                      "penalty": run.penalty})
        if in_a_row >= LOOPS_IN_A_ROW:  # it loops even at the raised penalty: the text stops (continue resumes)
            finish = LOOPING
            break
        run.penalty = round(min(MAX_PENALTY, (run.penalty or 1.0) + PENALTY_STEP), 3)
        if last:  # a last section is written again, for the ending; the next section starts afresh
            again = True
        else:
            index += 1
    if finish not in ("cancelled", LOOPING):
        if ending == BROKE_DOWN:  # as for the other templates: a break-down is named before a short text
            finish = "degenerate"
        elif target and count_words(answer) < SHORT_FRACTION * target:
            finish, ending = "short", SHORT
        else:
            finish = "target" if ending == CUT else "stop"
    stats.update(ending=ending, think_tokens=None, answer_tokens=None)
    yield Done(finish, plan.prompt_tokens, run.completion)


def _request(plan: "Plan", rendered: "Rendered", *, max_tokens: int, min_tokens: int,
             penalty: Optional[float]) -> BackendRequest:
    return BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant=rendered.prefill,
                          use_chat=plan.use_chat, max_tokens=max_tokens, min_tokens=min_tokens,
                          temperature=plan.request.temperature, top_p=plan.request.top_p,
                          repetition_penalty=penalty,
                          seed=plan.seed + plan.stats["rounds"], stop=rendered.stop)


async def _stream(plan: "Plan", call: BackendRequest, result: _Outcome, cancel, *, first: bool):
    """The text of one request (and Queued/Error events); fills ``result``."""
    async with aclosing(stream_request(plan.backend, call, cancel=cancel)) as items:
        async for item in items:
            if isinstance(item, (Queued, Error)):
                result.error = result.error or isinstance(item, Error)
                yield item
            elif isinstance(item, Delta):
                if first and plan.prompt_tokens is None:
                    plan.prompt_tokens = item.prompt_tokens
                result.tokens += item.tokens or 0
                yield item.text
            elif isinstance(item, Finish):
                result.finish = item.finish_reason
                if item.completion_tokens is not None:
                    result.tokens = item.completion_tokens
