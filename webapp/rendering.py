"""Turning requests and model text into what the page shows. Pure functions, no Gradio.

Safety rule: text written by a person or a model (requests, plans, answers, model and user names,
reasons, error messages) is never handed to a renderer as markup it could turn into HTML, scripts
or links. :func:`safe_markdown` is the one function every place that shows stored text in a
Markdown or HTML pane goes through. It escapes the text so that Markdown emphasis, headings and
lists still render, while:

- every ``<`` becomes ``&lt;`` (no tag, no ``<img onerror>``, no ``<javascript:...>`` autolink);
- every ``&`` becomes ``&amp;`` (no entity can smuggle a character back);
- every ``[``/``]`` is backslash-escaped (no Markdown link or image, so no ``javascript:`` URL and
  no remote image);
- every ``:`` and ``@``, and the ``.`` after ``www``, are backslash-escaped: the GFM renderer
  turns a bare ``http://...``, ``ftp://...``, ``www....`` or ``name@host`` into a live link, and
  none of them can form once its ``:``, ``.`` or ``@`` is escaped (it still reads the same).

Escape a whole text, not a stream chunk by chunk: ``www`` at the end of one chunk and ``.`` at the
start of the next would escape differently. The price: inside code blocks the escapes show
literally, which long-form writing rarely hits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", "[": "\\[", "]": "\\]", ":": "\\:", "@": "\\@"})
_WWW_DOT = re.compile(r"(?<=[wW]{3})\.")
_SLUG = re.compile(r"[^a-z0-9]+")

FINISH_WORDS = {
    "stop": "the model finished the text",
    "length": "stopped at the length limit",
    "target": "stopped at the target length",
    "short": "the model stopped well short of the target; Continue writes on from here",
    "degenerate": "stopped: the text broke down (no words in 200 tokens); Continue writes on from here",
    "cancelled": "stopped by you",
    "closed": "interrupted: the page was closed while it was being written; Continue writes on from here",
    "looping": "stopped: the text started repeating itself",
    "process_died": "interrupted: the server stopped while writing",
}


def safe_markdown(text: str) -> str:
    """``text`` escaped for a Markdown renderer: formatting kept, no HTML, no links, no images."""
    return _WWW_DOT.sub(r"\\.", (text or "").translate(_ESCAPES))


def finish_words(status: str, finish_reason: Optional[str], error: Optional[str] = None) -> str:
    """How a generation ended, in plain words (``"stopped at the length limit"``)."""
    if status == "failed":
        return f"failed: {error}" if error else "failed"
    if status == "interrupted" and finish_reason not in ("cancelled", "closed", "process_died"):
        return f"interrupted: {error}" if error else "interrupted before the end"
    if finish_reason in FINISH_WORDS:
        return FINISH_WORDS[finish_reason]
    if status == "truncated":
        return FINISH_WORDS["length"]
    if status == "streaming":
        return "still writing"
    return finish_reason or status


def progress_html(words: int, target: Optional[int]) -> str:
    """A live word count, with a bar against the target when there is one."""
    if not target:
        return f'<div class="lwz-progress"><span class="lwz-words">{words:,} words</span></div>'
    share = words / target
    width = min(100.0, 100.0 * share)
    return (
        '<div class="lwz-progress">'
        f'<span class="lwz-words">{words:,} / {target:,} words ({share:.0%})</span>'
        f'<div class="lwz-bar" role="progressbar" aria-valuemin="0" aria-valuemax="{target}" '
        f'aria-valuenow="{min(words, target)}" style="height:8px;background:#e5e7eb;border-radius:4px;margin-top:4px">'
        f'<div style="height:8px;width:{width:.1f}%;background:#f97316;border-radius:4px"></div></div>'
        "</div>"
    )


def thinking_label(state: str, seconds: Optional[float] = None) -> str:
    """The Thinking panel's title: pending, thinking (with elapsed time), done in N s, or skipped."""
    if state == "pending":
        return "Thinking · pending"
    if state == "thinking":
        return f"Thinking · {seconds:.0f} s" if seconds is not None else "Thinking…"
    if state == "done":
        return f"Thinking · done in {seconds:.1f} s" if seconds is not None else "Thinking · done"
    if state == "none":
        return "Thinking · the model wrote no plan"
    raise ValueError(f"unknown thinking state {state!r}")


LOOPING_DISTINCT4 = 0.4
"""Below this share of distinct 4-word sequences the summary says the text repeats itself (fluent
prose is above 0.9; the bundled model's loops are below 0.1)."""
REPETITION_MIN_WORDS = 100
"""Shorter texts get no repetition figure: a few sentences say little about loops."""


@dataclass(frozen=True)
class Summary:
    """What the tab shows when a generation has ended."""

    words: int
    target: Optional[int]
    completion_tokens: Optional[int]
    seconds: Optional[float]
    status: str
    finish_reason: Optional[str]
    error: Optional[str] = None
    generation_id: Optional[int] = None
    distinct4: Optional[float] = None
    """Distinct 4-word sequences over all of them: length reached by looping is not length."""

    def markdown(self) -> str:
        parts = [f"**{self.words:,} words**"]
        if self.target:
            parts[0] += f" ({self.words / self.target:.0%} of {self.target:,})"
        if self.distinct4 is not None:
            parts.append(f"distinct-4 {self.distinct4:.2f}" + (" (**it repeats itself**)" if self.distinct4 < LOOPING_DISTINCT4 else ""))
        if self.completion_tokens is not None:
            parts.append(f"{self.completion_tokens:,} tokens")
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        parts.append(safe_markdown(finish_words(self.status, self.finish_reason, self.error)))
        head = f"#{self.generation_id} · " if self.generation_id is not None else ""
        return head + " · ".join(parts)


def slug(text: str, *, limit: int = 40) -> str:
    """A file-name-safe stem from the start of a request (``"write-a-story-about"``)."""
    stem = _SLUG.sub("-", (text or "").lower()).strip("-")[:limit].strip("-")
    return stem or "writing"


def download_texts(*, request: str, think: str, answer: str, model: str, generation_id: int) -> dict[str, str]:
    """The ``.md`` and ``.txt`` downloads of one generation: ``{"md": ..., "txt": ...}``.

    The ``.md`` keeps the request and the plan as quoted context; the ``.txt`` is the text alone.
    """
    quoted_request = "\n".join("> " + line for line in request.strip().splitlines())
    md = [f"# Writing #{generation_id}", "", f"*Model: {model}*", "", "## Request", "", quoted_request, ""]
    if think.strip():
        md += ["## Plan", "", think.strip(), ""]
    md += ["## Text", "", answer.strip(), ""]
    return {"md": "\n".join(md), "txt": answer.strip() + "\n"}
