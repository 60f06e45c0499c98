"""``GenerationRequest``: what a user asks for, validated and cleaned on construction.

This module owns the request's facts: the sampling defaults (the released model's recommended
values) and the input limits. The CLI, the Write tab and the backends ask it; a form's raw
values become a request through :meth:`GenerationRequest.from_form`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Optional

from core.errors import UserError

MAX_PROMPT_CHARS = 100_000
MAX_FORM_PROMPT_CHARS = 20_000
"""The Write tab's stricter limit on a typed request (the CLI and batches take MAX_PROMPT_CHARS)."""
MAX_TARGET_WORDS = 100_000
MAX_THINK_BUDGET = 100_000
DEFAULT_TEMPERATURE = 0.6
DEFAULT_TOP_P = 0.95
"""The released model's recommended sampling (its card: temperature 0.6, top_p 0.95)."""
TEMPERATURE_RANGE = (0.0, 2.0)
REPETITION_PENALTY_RANGE = (1.0, 2.0)
"""A repetition penalty divides the logits of every token already in the prompt or the text (as
vLLM and transformers apply it); 1 is none. The bundled 135M model loops without one."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
"""Control characters (tab, newline and carriage return are kept) and invisible format marks."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _form_number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None


def _form_int(value: Any, *, zero_is_none: bool = False) -> Any:
    """A whole number from a form field, or the value unchanged (the constructor then refuses it)."""
    if _blank(value):
        return None
    if isinstance(value, (str, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            return value
        if number.is_integer():
            value = int(number)
    if zero_is_none and value == 0:
        return None
    return value


def check_repetition_penalty(value: Any) -> None:
    """Raises UserError unless ``value`` is None or a number in REPETITION_PENALTY_RANGE."""
    low, high = REPETITION_PENALTY_RANGE
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high):
        raise UserError(f"the repetition penalty must be between {low:g} and {high:g} (1 is none), got {value!r}")


@dataclass
class GenerationRequest:
    """One writing request. Construction strips control characters and raises UserError for
    an empty prompt, a prompt over 100,000 characters, a target outside 1..100,000 words, or
    out-of-range sampling values; the message says what to change."""

    prompt: str
    target_words: Optional[int] = None
    think_budget: Optional[int] = None
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: Optional[int] = None
    max_tokens: Optional[int] = None
    repetition_penalty: Optional[float] = None
    """None: the model's own (its registered sampling), else none."""

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
        if self.think_budget is not None and (not _is_int(self.think_budget) or not 0 <= self.think_budget <= MAX_THINK_BUDGET):
            raise UserError(f"the think budget must be a whole number of tokens from 0 to {MAX_THINK_BUDGET:,}, got {self.think_budget!r}")
        if self.max_tokens is not None and (not _is_int(self.max_tokens) or self.max_tokens < 1):
            raise UserError(f"max_tokens must be a positive whole number, got {self.max_tokens!r}")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**63):
            raise UserError(f"the seed must be a whole number from 0 to 2**63-1, got {self.seed!r}")
        low, high = TEMPERATURE_RANGE
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) or not low <= self.temperature <= high:
            raise UserError(f"the temperature must be between {low:g} and {high:g}, got {self.temperature!r}")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p!r}")
        check_repetition_penalty(self.repetition_penalty)

    @classmethod
    def from_form(cls, *, prompt: Any, target_words: Any = None, think_budget: Any = None, temperature: Any = None,
                  top_p: Any = None, seed: Any = None, max_tokens: Any = None) -> "GenerationRequest":
        """A request from a form's raw values (text fields, sliders, numbers as floats): blank
        means "not given", a target or think budget of 0 means none, whole-number floats are
        whole numbers. The same checks and messages as the constructor."""
        return cls(
            prompt=prompt, target_words=_form_int(target_words, zero_is_none=True),
            think_budget=_form_int(think_budget, zero_is_none=True), seed=_form_int(seed),
            temperature=DEFAULT_TEMPERATURE if _blank(temperature) else _form_number(temperature, "the temperature"),
            top_p=DEFAULT_TOP_P if _blank(top_p) else _form_number(top_p, "top_p"), max_tokens=_form_int(max_tokens),
        )

    def params(self) -> dict:
        """The request as plain JSON-able values (the prompt left out)."""
        values = asdict(self)
        values.pop("prompt")
        return values
