"""How the one-request templates put a request into words, and the rendered form every template
produces.

Two templates write the whole text in one request: ``think`` (the LongWriter-Zero protocol) and
``direct`` (a generic write-it-now prompt of this project, not the paper's no-think ablation).
Each renders a request in two forms, because servers expose two paths:

- a raw completion prompt for ``/v1/completions``: for ``think`` it is the released model's exact
  English or Chinese template (chosen by whether the request has a CJK character) with its stop
  strings;
- chat messages for ``/v1/chat/completions`` and the embedded model: the same instructions go in
  the system message, and for ``think`` the assistant turn is pre-filled with ``<think>``.

The template texts are the released model's (model card of THU-KEG/LongWriter-Zero-32B), kept
verbatim in ``longwriter_zero.json`` next to this module. Which template a model uses, and what
each name means, is decided in one place: the table of ``generation.templates``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

from generation.counting import has_cjk
from generation.parser import THINK_OPEN

THINK_PREFILL = THINK_OPEN
_CONCLUDE = {
    "en": "\n\n(The text so far is close to the requested length: continue it and bring it to a natural, "
          "complete ending within about {words} more words.)",
    "zh": "\n\n（正文已接近要求的篇幅：请接着写下去，并在大约{words}字之内自然、完整地收尾。）",
}

_DATA = Path(__file__).with_name("longwriter_zero.json")

_DIRECT = {
    "en": "You are a skilled writer. Write the complete piece the user asks for, directly, "
    "without any preamble, plan or commentary. Match the requested length.",
    "zh": "你是一位出色的写作者。直接写出用户要求的完整作品，不要任何开场白、规划或评论。符合要求的篇幅。",
}
_DIRECT_RAW = {
    "en": "{system}\n\nRequest: {question}\n\nText:\n",
    "zh": "{system}\n\n要求：{question}\n\n正文：\n",
}


@lru_cache(maxsize=1)
def _protocol() -> dict:
    return json.loads(_DATA.read_text(encoding="utf-8"))


def language_of(prompt: str) -> str:
    """'zh' when the request has a CJK character, else 'en' (the released model's rule)."""
    return "zh" if has_cjk(prompt) else "en"


@dataclass(frozen=True)
class Rendered:
    """One request rendered for one template.

    ``raw`` is the full completion prompt; ``system``/``user``/``prefill`` are the chat form
    (``prefill`` starts the assistant turn). ``stop`` is passed to the server on both paths.
    """

    template: str
    language: str
    raw: str
    system: str
    user: str
    prefill: str
    stop: list[str] = field(default_factory=list)

    @property
    def prefilled_think(self) -> bool:
        return self.prefill.endswith(THINK_PREFILL)


def _with_conclusion(prompt: str, lang: str, conclude_within: Optional[int]) -> str:
    """``conclude_within`` (words) adds a request to end the text within that many more words: the
    round that continues a text nearing its target is sent with it."""
    if conclude_within is None:
        return prompt
    return prompt + _CONCLUDE[lang].format(words=max(1, conclude_within))


def render_think(name: str, prompt: str, *, conclude_within: Optional[int] = None) -> Rendered:
    """The LongWriter-Zero protocol: the raw template and its stop strings; the chat form pre-fills ``<think>``."""
    lang = language_of(prompt)
    prompt = _with_conclusion(prompt, lang, conclude_within)
    proto = _protocol()
    raw_template = proto["templates"][lang]
    raw = raw_template.replace(proto["placeholder"], prompt)
    # The chat form: the instructions before the turn markers become the system message.
    system = raw_template.split("<|user|>" if lang == "en" else "<|用户|>")[0].strip()
    return Rendered(name, lang, raw, system, prompt, THINK_PREFILL, list(proto["stop"]))


def render_direct(name: str, prompt: str, *, conclude_within: Optional[int] = None) -> Rendered:
    """Write the piece at once, no plan, no preamble."""
    lang = language_of(prompt)
    prompt = _with_conclusion(prompt, lang, conclude_within)
    system = _DIRECT[lang]
    return Rendered(name, lang, _DIRECT_RAW[lang].format(system=system, question=prompt), system, prompt, "", [])


def recommended_sampling() -> dict:
    """The released model's recommended temperature, top_p and max_tokens."""
    return dict(_protocol()["recommended_sampling"])
