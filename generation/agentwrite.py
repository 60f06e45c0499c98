"""The ``plan`` template: plan-then-write, the AgentWrite pipeline of LongWriter (arXiv 2408.07055),
for models that do not think by themselves or cannot write long in one request.

1. One request asks for a numbered plan of sections, each with its main point and a word budget,
   the budgets summing to the target. The plan streams as the think part.
2. The sections are written in turn, one request each, to their budgets; each request holds the
   request, the plan and the tail of the text so far. The sections stream as the answer.

One stored generation: ``plan.stats["sections"]`` gives per-section figures (point, budget,
words, how it ended). A continuation resumes at the first section not yet written.
Budgets that do not parse or do not add up are rescaled to the target here, never trusted.
"""

from __future__ import annotations

import asyncio
import math
import re
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator, Optional

from core.errors import UserError
from generation.backends.base import BackendRequest, Delta, Finish
from generation.control import BROKE_DOWN, CUT, LOOPING, NATURAL, SHORT, LengthController
from generation.counting import count_words
from generation.events import Answer, Done, Error, Event, Queued, Think
from generation.length import MAX_FRACTION, SHORT_FRACTION
from generation.rendering import Rendered
from generation.stream import stream_request

if TYPE_CHECKING:
    from generation.prepared import Plan

SECTION_WORDS = 250
"""The plan aims at sections of about this many words (a small model writes well at this size)."""
MAX_SECTIONS = 60
MAX_SECTION_WORDS = 1000
"""A section longer than this is past what one request of a small model writes well."""
MIN_SECTION_WORDS = 20
DEFAULT_SECTIONS = 4
"""Sections asked for when the request has no target."""
PLAN_TOKENS_PER_SECTION = 48
"""The plan's default token budget per section (a line each, with room)."""
TAIL_WORDS = 400
"""How much of the text so far each section request carries (its end)."""
SECTION_MIN_SHARE = 0.6
"""A section is held open to this share of its budget (min_tokens)."""
SEPARATOR = "\n\n"

_SYSTEM = {
    "en": "You are a skilled writer who plans long pieces before writing them, section by section.",
    "zh": "你是一位出色的写作者，先规划长篇作品，再逐节写作。",
}
_PLAN_ASK = {
    "en": "Writing request: {prompt}\n\nPlan this piece as {n} numbered sections, one line each, in this form:\n"
          "Section 1 - Main point: <what the section says> - Word count: <number> words\n"
          "The word counts must add up to {target} words. Write only the plan.",
    "zh": "写作要求：{prompt}\n\n请把这篇作品规划为{n}个编号的小节，每节一行，格式如下：\n"
          "第1节 - 要点：<这一节写什么> - 字数：<数字>字\n各节字数之和必须为{target}字。只写规划。",
}
_SECTION_ASK = {
    "en": "Writing request: {prompt}\n\nPlan:\n{plan}\n\n{so_far}Now write section {i} of {n}: {point}\n"
          "Write about {words} words. Continue the text; do not repeat it; no title, no notes, only this section.{last}",
    "zh": "写作要求：{prompt}\n\n规划：\n{plan}\n\n{so_far}现在写第{i}节（共{n}节）：{point}\n"
          "大约写{words}字。接着上文写，不要重复，不要标题和说明，只写这一节。{last}",
}
_SO_FAR = {"en": "The text so far ends:\n...{tail}\n\n", "zh": "已写正文的结尾：\n……{tail}\n\n"}
_LAST = {"en": " This is the last section: bring the piece to a complete ending.", "zh": "这是最后一节：请让全文完整地收尾。"}
_BUDGET = re.compile(r"(\d[\d,]*)\s*(?:words?|字)", re.I)
_NUMBERED = re.compile(r"^\s*(?:(?:section|paragraph|part)\s*\d+|第\s*\d+\s*[节段部分]|\d+[.):、])", re.I)
_POINT = re.compile(r"(?:main point|要点)\s*[:：]\s*(.+?)\s*(?:[-–—]\s*(?:word count|字数)|$)", re.I)


@dataclass(frozen=True)
class Section:
    point: str
    words: int


def section_count(target: Optional[int]) -> int:
    """How many sections the plan asks for: about SECTION_WORDS each, within 1..MAX_SECTIONS."""
    if not target:
        return DEFAULT_SECTIONS
    return max(1, min(MAX_SECTIONS, round(target / SECTION_WORDS)))


def default_plan_tokens(target: Optional[int]) -> int:
    return section_count(target) * PLAN_TOKENS_PER_SECTION + 64


def check_reachable(*, target: Optional[int], plan_tokens: int, prompt_tokens: int, tokens_per_word: float,
                    context: int) -> None:
    """UserError, with the numbers, when the template cannot reach ``target``: sections past
    MAX_SECTION_WORDS, or a section request (prompt, plan, tail of the text, the section) that
    does not fit the model's context."""
    if target and target / MAX_SECTIONS > MAX_SECTION_WORDS:
        raise UserError(f"the plan template writes at most {MAX_SECTIONS} sections of {MAX_SECTION_WORDS:,} words "
                        f"({MAX_SECTIONS * MAX_SECTION_WORDS:,} words); {target:,} is beyond it: ask for fewer words")
    section_words = math.ceil((target or SECTION_WORDS * DEFAULT_SECTIONS) / section_count(target))
    tail = math.ceil(TAIL_WORDS * tokens_per_word)
    section = math.ceil(section_words * tokens_per_word * MAX_FRACTION) + 8
    need = 2 * prompt_tokens + plan_tokens + tail + section + 128
    if need > context:
        raise UserError(f"a section request of the plan template needs up to {need:,} tokens (the request twice, "
                        f"{prompt_tokens:,} each, the plan {plan_tokens:,}, the text's tail {tail:,}, the section "
                        f"{section:,}), more than the model's context of {context:,} tokens; ask for fewer words "
                        "or a smaller think budget")


def _rendered(lang: str, user: str) -> Rendered:
    system = _SYSTEM[lang]
    return Rendered("plan", lang, f"{system}\n\n{user}\n\n", system, user, "", [])


def render_plan_step(prompt: str, lang: str, target: Optional[int] = None) -> Rendered:
    """Step 1: the request for a plan."""
    n = section_count(target)
    total = target or n * SECTION_WORDS
    return _rendered(lang, _PLAN_ASK[lang].format(prompt=prompt, n=n, target=total))


def render_section_step(prompt: str, lang: str, *, plan_text: str, sections: list[Section], index: int,
                        text_so_far: str) -> Rendered:
    """Step 2, section ``index`` (0-based): the request, the plan, the tail of the text so far."""
    words = text_so_far.split()
    tail = " ".join(words[-TAIL_WORDS:]) if lang == "en" else text_so_far[-TAIL_WORDS * 2:]
    section = sections[index]
    plan_lines = plan_text.strip() or "\n".join(f"{i}. {s.point} ({s.words} words)" for i, s in enumerate(sections, 1))
    user = _SECTION_ASK[lang].format(
        prompt=prompt, plan=plan_lines, so_far=_SO_FAR[lang].format(tail=tail) if tail.strip() else "",
        i=index + 1, n=len(sections), point=section.point or "continue the piece", words=section.words,
        last=_LAST[lang] if index == len(sections) - 1 else "")
    return _rendered(lang, user)


def parse_plan(text: str, target: Optional[int]) -> list[Section]:
    """Sections from a plan's numbered lines, their budgets rescaled to sum to the target (an
    even split of the target when no line parses)."""
    found: list[tuple[str, Optional[int]]] = []
    for line in (text or "").splitlines():
        if not _NUMBERED.match(line):
            continue
        budget = _BUDGET.findall(line)
        point = _POINT.search(line)
        point_text = point.group(1) if point else _NUMBERED.sub("", line, count=1).strip(" -:：.")
        found.append((point_text.strip()[:300], int(budget[-1].replace(",", "")) if budget else None))
    total = target or section_count(target) * SECTION_WORDS
    n = max(len(found), section_count(target))  # a plan with fewer lines than asked gets unnamed sections
    n = max(1, min(n, MAX_SECTIONS, total // MIN_SECTION_WORDS or 1))
    found = (found + [("", None)] * n)[:n]
    given = [b if b and b > 0 else None for _, b in found]
    known = sum(b for b in given if b)
    weights = [b if b else (known / max(1, sum(1 for x in given if x)) if known else 1) for b in given]
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    budgets = [math.floor(x) for x in raw]
    for i in sorted(range(n), key=lambda k: raw[k] - budgets[k], reverse=True)[: total - sum(budgets)]:
        budgets[i] += 1
    return [Section(point, words) for (point, _), words in zip(found, budgets)]


async def run_agentwrite(plan: "Plan", *, cancel: Optional[asyncio.Event] = None, start: Optional[dict] = None
                         ) -> AsyncIterator[Event]:
    """Stream a ``plan``-template generation. ``start`` (a continuation) holds the stored plan
    text, the answer so far and the sections already written: writing resumes at the next one."""
    request, stats = plan.request, plan.stats
    lang, target = plan.rendered.language, request.target_words
    stats.setdefault("rounds", 0)
    done_sections: list[dict] = list((start or {}).get("sections", []))
    plan_text = (start or {}).get("think", "")
    answer = (start or {}).get("answer", "")
    completion = 0
    if start is None:
        if plan.budget.think > 0:
            rendered = render_plan_step(request.prompt, lang, target)
            call = _request(plan, rendered, max_tokens=plan.budget.think, min_tokens=0)
            stats["rounds"] += 1
            result = _Outcome()
            async with aclosing(_stream(plan, call, result, cancel, first=True)) as items:
                async for text in items:
                    if isinstance(text, (Queued, Error)):
                        yield text
                        continue
                    plan_text += text
                    yield Think(text)
            completion += result.tokens
            if result.error:
                return
            if result.finish == "cancelled":
                yield Done("cancelled", plan.prompt_tokens, completion)
                return
    sections = parse_plan(plan_text, target)
    stats["plan"] = [{"point": s.point, "words": s.words} for s in sections]
    finish, ending = "stop", NATURAL
    for index in range(len(done_sections), len(sections)):
        section = sections[index]
        rendered = render_section_step(request.prompt, lang, plan_text=plan_text, sections=sections, index=index,
                                       text_so_far=answer)
        max_tokens = max(16, math.ceil(section.words * plan.tokens_per_word * MAX_FRACTION) + 8)
        min_tokens = math.floor(section.words * plan.tokens_per_word * SECTION_MIN_SHARE)
        controller = LengthController(section.words, steer=False)
        call = _request(plan, rendered, max_tokens=max_tokens, min_tokens=min_tokens)
        stats["rounds"] += 1
        result = _Outcome()
        fed = section_text = ""
        async with aclosing(_stream(plan, call, result, cancel, first=not done_sections and not plan_text)) as items:
            async for text in items:
                if isinstance(text, (Queued, Error)):
                    yield text
                    continue
                if not fed:  # a section starts on a paragraph of its own
                    text = text.lstrip()
                    if not text:
                        continue
                    text = (SEPARATOR if answer else "") + text
                fed += text
                out = controller.feed(text, fed, 1)
                section_text += out
                if out:
                    yield Answer(out)
                if controller.stop_reason is not None:
                    break
        held = controller.flush()
        if held:
            section_text += held
            yield Answer(held)
        answer += section_text
        completion += result.tokens
        done_sections.append({"point": section.point, "budget": section.words, "words": count_words(section_text),
                              "finish": controller.stop_reason or result.finish or "length"})
        stats["sections"] = done_sections
        if result.error:
            return
        if result.finish == "cancelled":
            finish, ending = "cancelled", None
            break
        ending = controller.stopped_ending(result.finish) or NATURAL
        if ending == LOOPING:  # the loop guard stopped the section: the text stops there (continue resumes)
            finish = LOOPING
            break
    if finish not in ("cancelled", LOOPING) and target:
        if ending == BROKE_DOWN:  # as for the other templates: a break-down is named before a short text
            finish = "degenerate"
        elif count_words(answer) < SHORT_FRACTION * target:
            finish, ending = "short", SHORT
        else:
            finish = "target" if ending == CUT else "stop"
    stats.update(ending=ending, think_tokens=None, answer_tokens=None)
    yield Done(finish, plan.prompt_tokens, completion)


@dataclass
class _Outcome:
    finish: Optional[str] = None
    tokens: int = 0
    error: bool = False


def _request(plan: "Plan", rendered: Rendered, *, max_tokens: int, min_tokens: int) -> BackendRequest:
    return BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user, assistant="",
                          use_chat=plan.use_chat, max_tokens=max_tokens, min_tokens=min_tokens,
                          temperature=plan.request.temperature, top_p=plan.request.top_p,
                          repetition_penalty=plan.request.repetition_penalty,
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
