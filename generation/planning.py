"""The plan of a ``plan``-template text as data: how many sections and parts a length needs, the
lines a model writes for a plan, the outline the text is written from, and its word budgets.

Why levels: asked for 60 one-line sections at once, a model wrote 4 lines (a 20,000-word
LongWrite-Ruler request through vLLM), and padding the rest with blank sections gave 56 sections
with nothing to say. So a long text is planned as parts first, then each part as sections, and a
list that comes back short is asked for again (``generation.agentwrite`` does the asking). No
section is ever made up here: every one comes from a line the model wrote.

The outline is kept as text, the stored plan (the ``think`` part): a header line per part and a
numbered line per section with its final budget, the last one marked as the conclusion.
:func:`read_outline` reads it back (a continuation writes on from it), and reads the one-level
plans stored before levels too. Pure functions: no backend, no clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from generation.counting import count_words

SECTION_WORDS = 250
"""The plan aims at sections of about this many words (a small model writes well at this size)."""
MAX_SECTIONS = 60
MAX_SECTION_WORDS = 1000
"""A section longer than this is past what one request of a small model writes well."""
MIN_SECTION_WORDS = 20
DEFAULT_SECTIONS = 4
"""Sections asked for when the request has no target."""
SECTIONS_PER_PART = 8
"""A text that needs more sections than this is planned in parts first, then each part alone."""
POINT_WORDS = 32
"""A main point is cut to this many words (CJK characters count one each): a point is a line,
and the outline each section request carries must stay small."""
BUDGET_SPREAD = 2.0
"""Within a part, a section's budget stays within this factor of the part's mean: the word counts
a model writes are noise at the extremes."""

_PART_HEADER = {"en": "Part {j}: {point} ({words:,} words)", "zh": "第{j}部分：{point}（{words}字）"}
_SECTION_LINE = {"en": "{i}. {point} ({words:,} words{ending})", "zh": "{i}. {point}（{words}字{ending}）"}
_ENDING_MARK = {"en": ", the conclusion", "zh": "，结尾"}
_PARTS_LINE = {"en": "The piece in {k} parts: {points}", "zh": "全文分{k}部分：{points}"}
_HEADER = re.compile(r"^\s*(?:Part\s+(\d+)\s*:|第(\d+)部分\s*：)\s*(.+)$")
_LEAD = re.compile(r"^[\s#>*_`•-]+")
_NUMBER = re.compile(r"^(?:(?:section|part|chapter|paragraph|step)\s*\d+(?:[-.]\d+)*\b|第\s*[\d一二三四五六七八九十百]+\s*[节段部分章]"
                     r"|\d+\s*[.)）:：、])", re.I)
_LABEL = re.compile(r"(?:main\s*point|要点)\s*[:：]", re.I)
_BUDGET = re.compile(r"(\d[\d,]*)\s*(?:words?|字)", re.I)
_BUDGET_CLAUSE = re.compile(r"[\s\-–—,，;；(（\[]*(?:(?:word\s*count|length|字数)\s*[:：]?\s*)?(?:about\s*|约)?"
                            r"\d[\d,]*\s*(?:words?|字)(?:[,，]\s*(?:the conclusion|结尾))?\s*[)）\]]?\s*[.。]?\s*$", re.I)
"""A word count at the end of a line, with what surrounds it ("- Word count: 300 words",
"(300 words, the conclusion)")."""
_COUNT_LABEL = re.compile(r"\s*[-–—]\s*(?:word\s*count|字数).*$", re.I)
_PLACEHOLDER = re.compile(
    r"<[^>]*>|\[[^\]]*\]|\b(?:main (?:point|idea)|section title|part number|what (?:the|this) (?:section|part) "
    r"(?:says|covers)|word count|(?:paragraphs?|sections?) should)\b|要点|字数", re.I)
"""A line that copies the planning request's own form instead of giving a point: a placeholder
("<what the section says>", "[section title]") or the request's words ("the main idea", "All
paragraphs should have one length"), as the bundled model wrote in the 10,000-word browser run
(``benchmarks/results/long_browser_default_10k.json``)."""
_TRIM = " \t-–—:：.;；,，\"'“”‘’*_"


@dataclass(frozen=True)
class Item:
    """One line of a model's plan: its main point and the word count it gave (None: none given)."""

    point: str
    words: Optional[int] = None


@dataclass(frozen=True)
class Section:
    """One section to write: its main point, its word budget and the part it belongs to."""

    point: str
    words: int
    part: int = 0


@dataclass(frozen=True)
class Outline:
    """The whole plan. ``parts`` holds the parts' points (empty for a plan in one level); the last
    section is the ending."""

    parts: tuple[str, ...]
    sections: tuple[Section, ...]

    def records(self) -> list[dict]:
        """Per-section entries for the row (``params["plan"]``): point, budget, part, the ending."""
        out = []
        for index, section in enumerate(self.sections):
            record = {"point": section.point, "words": section.words}
            if self.parts:
                record["part"] = section.part + 1
            if index == len(self.sections) - 1:
                record["conclusion"] = True
            out.append(record)
        return out


def section_count(target: Optional[int]) -> int:
    """How many sections the plan asks for: about SECTION_WORDS each, within 1..MAX_SECTIONS."""
    if not target:
        return DEFAULT_SECTIONS
    return max(1, min(MAX_SECTIONS, round(target / SECTION_WORDS)))


def part_count(sections: int) -> int:
    """How many parts a plan of ``sections`` sections is planned in (1: one level)."""
    return 1 if sections <= SECTIONS_PER_PART else math.ceil(sections / SECTIONS_PER_PART)


def max_sections(total_words: int) -> int:
    """The most sections a text of ``total_words`` may have (each at least MIN_SECTION_WORDS)."""
    return max(1, min(MAX_SECTIONS, total_words // MIN_SECTION_WORDS))


def spread(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` whole shares as even as they come, the larger ones first."""
    base, extra = divmod(total, k)
    return [base + (1 if i < extra else 0) for i in range(k)]


def point_key(point: str) -> str:
    """What makes two points the same point: their words, without case or punctuation."""
    return re.sub(r"[\W_]+", " ", point.lower()).strip()


def numbered(text: str) -> bool:
    """True when ``text`` begins with a plan line's number ("Section 3", "3.", "第3节")."""
    return _NUMBER.match(_LEAD.sub("", (text or "").lstrip().replace("**", ""))) is not None


def parse_items(text: str, lang: str = "en") -> list[Item]:
    """The plan lines in a model's reply, in order: numbered lines ("Section 3 - Main point: ...
    - Word count: 300 words", "3. ...", "第3节 ..."), markdown marks dropped, the word count taken
    apart from the point. A point given on the line after its number ("Main point: ...") is
    joined to it. Lines without a usable point (empty, a template placeholder such as
    "<what the section says>", no letter) are left out."""
    items: list[Item] = []
    waiting: Optional[int] = None
    open_number = False  # the line before was a numbered line without a point: its point may follow
    for raw in (text or "").splitlines():
        line = _LEAD.sub("", raw.replace("**", "").replace("__", ""))
        number = _NUMBER.match(line)
        if number is None:
            label = _LABEL.match(line)
            if open_number and label is not None:
                rest = line[label.end():]
                item = _item(rest, lang, _last_count(rest) or waiting)
                if item is not None:
                    items.append(item)
            if line.strip():
                open_number = False
            continue
        rest = line[number.end():]
        label = _LABEL.search(rest)
        item = _item(rest[label.end():] if label else rest, lang, _last_count(rest))
        if item is not None:
            items.append(item)
        open_number, waiting = item is None, _last_count(rest)
    return items


def _last_count(text: str) -> Optional[int]:
    """The last word count written in ``text`` ("300 words", "300字"), or None."""
    counts = _BUDGET.findall(text)
    return int(counts[-1].replace(",", "")) if counts else None


def _item(text: str, lang: str, words: Optional[int]) -> Optional[Item]:
    """The point in ``text`` (its word count clause cut off), or None when it has none."""
    point = _COUNT_LABEL.sub("", _BUDGET_CLAUSE.sub("", text)).strip(_TRIM)
    if not point or _PLACEHOLDER.search(point) or not any(ch.isalpha() for ch in point):
        return None
    if count_words(point) > POINT_WORDS:  # its first sentence when that is short enough, else its first words
        first = re.split(r"(?<=[.!?;。！？；])\s*", point, maxsplit=1)[0].strip(_TRIM)
        if 0 < count_words(first) <= POINT_WORDS:
            point = first
        else:
            point = " ".join(point.split()[:POINT_WORDS]) if lang == "en" else point[:POINT_WORDS]
    return Item(point, words if words and words > 0 else None)


def request_point(prompt: str, lang: str, words: int) -> Optional[Item]:
    """The writing request itself as the one point of a short text whose model wrote no plan
    (cut as a plan line's point is), or None when it holds none."""
    return _item(" ".join(prompt.split()), lang, words)


def split_budget(given: Sequence[Optional[int]], total: int, *, spread_limit: Optional[float] = None) -> list[int]:
    """Whole word budgets summing to ``total``, in proportion to ``given`` (a missing count
    weighs the mean of the given ones, or 1 when none is given). With ``spread_limit`` each
    weight is first held within that factor of the mean. Budgets that already sum to ``total``
    come back unchanged (a stored outline reads back as it was written)."""
    n = len(given)
    if n == 0:
        return []
    known = [g for g in given if g]
    mean = sum(known) / len(known) if known else 1.0
    weights = [float(g) if g else mean for g in given]
    if spread_limit:
        mean = sum(weights) / n
        weights = [min(max(w, mean / spread_limit), mean * spread_limit) for w in weights]
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    budgets = [math.floor(x + 1e-9) for x in raw]
    for i in sorted(range(n), key=lambda k: raw[k] - budgets[k], reverse=True)[: total - sum(budgets)]:
        budgets[i] += 1
    return budgets


def parts_line(lang: str, parts: Sequence[str]) -> str:
    """The line that shows the parts before they are planned section by section (read back as nothing)."""
    joined = " · ".join(parts) if lang == "en" else "；".join(parts)
    return _PARTS_LINE[lang].format(k=len(parts), points=joined)


def part_block(lang: str, *, part: Optional[int], point: str, sections: Sequence[Section], first: int,
               ending: bool) -> str:
    """One part of the outline as text: its header (none for a plan in one level) and its sections,
    numbered from ``first`` (1-based); with ``ending`` the last one is marked as the ending."""
    lines = []
    if part is not None:
        lines.append(_PART_HEADER[lang].format(j=part + 1, point=point, words=sum(s.words for s in sections)))
    for offset, section in enumerate(sections):
        mark = _ENDING_MARK[lang] if ending and offset == len(sections) - 1 else ""
        lines.append(_SECTION_LINE[lang].format(i=first + offset, point=section.point, words=section.words,
                                                ending=mark))
    return "\n".join(lines) + "\n"


def read_outline(text: str, target: Optional[int], lang: str = "en") -> Outline:
    """The outline in a stored plan: part headers with the numbered sections under them, or
    numbered sections alone (a plan in one level, and every plan stored before levels). A part
    with no section line is one section with the part's point. The budgets are rescaled to the
    target (unchanged when they already sum to it, as in an outline this module wrote)."""
    parts: list[Item] = []
    chunks: list[list[str]] = [[]]
    for line in (text or "").splitlines():
        header = _HEADER.match(line)
        if header is not None:
            parts.append(_item(header.group(3), lang, _last_count(header.group(3))) or Item(""))
            chunks.append([])
        else:
            chunks[-1].append(line)
    found: list[tuple[Item, int]] = [(item, 0) for item in parse_items("\n".join(chunks[0]), lang)]
    for index, (part, chunk) in enumerate(zip(parts, chunks[1:])):
        items = parse_items("\n".join(chunk), lang) or ([part] if part.point else [])
        found.extend((item, index) for item in items)
    total = target or sum(item.words or 0 for item, _ in found) or SECTION_WORDS * max(1, len(found))
    found = found[: max_sections(total)]
    budgets = split_budget([item.words for item, _ in found], total)
    sections = tuple(Section(item.point, words, part) for (item, part), words in zip(found, budgets))
    return Outline(tuple(p.point for p in parts), sections)
