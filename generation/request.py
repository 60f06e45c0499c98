"""``GenerationRequest``: what a user asks for, validated and cleaned on construction."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Optional

from core.errors import UserError

MAX_PROMPT_CHARS = 100_000
MAX_TARGET_WORDS = 100_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
"""Control characters (tab, newline and carriage return are kept) and invisible format marks."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class GenerationRequest:
    """One writing request. Construction strips control characters and raises UserError for
    an empty prompt, a prompt over 100,000 characters, a target outside 1..100,000 words, or
    out-of-range sampling values; the message says what to change."""

    prompt: str
    target_words: Optional[int] = None
    think_budget: Optional[int] = None
    temperature: float = 0.6
    top_p: float = 0.95
    seed: Optional[int] = None
    max_tokens: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise UserError("the prompt must be text")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise UserError(f"the prompt is {len(self.prompt):,} characters, over the limit of {MAX_PROMPT_CHARS:,}; shorten it")
        self.prompt = _CONTROL.sub("", self.prompt).strip()
        if not self.prompt:
            raise UserError("the prompt is empty: write what you want the model to write")
        if self.target_words is not None and (not _is_int(self.target_words) or not 1 <= self.target_words <= MAX_TARGET_WORDS):
            raise UserError(f"the target must be a whole number of words from 1 to {MAX_TARGET_WORDS:,}, got {self.target_words!r}")
        if self.think_budget is not None and (not _is_int(self.think_budget) or self.think_budget < 0):
            raise UserError(f"the think budget must be a number of tokens, 0 or more, got {self.think_budget!r}")
        if self.max_tokens is not None and (not _is_int(self.max_tokens) or self.max_tokens < 1):
            raise UserError(f"max_tokens must be a positive whole number, got {self.max_tokens!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**63):
            raise UserError(f"the seed must be a whole number from 0 to 2**63-1, got {self.seed!r}")
        if not isinstance(self.temperature, (int, float)) or not 0 <= self.temperature <= 2:
            raise UserError(f"the temperature must be between 0 and 2, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p!r}")

    def params(self) -> dict:
        """The request as plain JSON-able values (the prompt left out)."""
        values = asdict(self)
        values.pop("prompt")
        return values
