"""Length and think-budget arithmetic: pure functions, no backend.

A target word count becomes a token budget through the model's measured tokens-per-word
ratio (see :func:`generation.tokenization.tokens_per_word`). The answer may use between
``MIN_FRACTION`` and ``MAX_FRACTION`` of the target; the plan gets its own budget on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from core.errors import UserError

MIN_FRACTION = 0.95
"""The answer is kept going (min_tokens, continuation) until this share of the target."""
MAX_FRACTION = 1.6
"""The token ceiling (max_tokens) of an answer, as a share of its target: a safety net, since
the service counts words while streaming and stops at the target (see ``generation.service``)."""
SHORT_FRACTION = 0.85
"""An answer that stops below this share of its target is continued."""
DEFAULT_ANSWER_TOKENS = 4096
"""Answer budget when neither a target nor max_tokens is given (shrunk to fit the context)."""
DEFAULT_THINK_TOKENS = (256, 2048)
"""Bounds of the default think budget, which is half the answer budget within them."""
MIN_ANSWER_TOKENS = 16


@dataclass(frozen=True)
class Budget:
    """Token budgets of one generation. ``think`` is 0 for templates without a plan."""

    think: int
    answer_max: int
    answer_min: int

    @property
    def total(self) -> int:
        return self.think + self.answer_max


def answer_token_range(target_words: int, tokens_per_word: float) -> tuple[int, int]:
    """``(min_tokens, max_tokens)`` for an answer of ``target_words`` words."""
    return (
        max(1, math.floor(target_words * tokens_per_word * MIN_FRACTION)),
        max(MIN_ANSWER_TOKENS, math.ceil(target_words * tokens_per_word * MAX_FRACTION) + 8),
    )


def plan_budget(
    *,
    target_words: Optional[int],
    think_budget: Optional[int],
    max_tokens: Optional[int],
    tokens_per_word: float,
    with_think: bool,
    prompt_tokens: int,
    context: int,
) -> Budget:
    """The budget for one request, or UserError when it cannot fit the model's context.

    Explicit values (a target, ``max_tokens``, a think budget) are honoured or refused, never
    silently shrunk; defaults shrink to what fits. The refusal names both numbers.
    """
    if target_words is not None:
        answer_min, answer_max = answer_token_range(target_words, tokens_per_word)
        if max_tokens is not None:
            answer_max = min(answer_max, max_tokens)
            answer_min = min(answer_min, answer_max)
    elif max_tokens is not None:
        answer_min, answer_max = 0, max_tokens
    else:
        answer_min, answer_max = 0, DEFAULT_ANSWER_TOKENS
    if not with_think:
        think = 0
    elif think_budget is not None:
        think = think_budget
    else:
        low, high = DEFAULT_THINK_TOKENS
        think = max(low, min(high, answer_max // 2))
    room = context - prompt_tokens
    explicit = target_words is not None or max_tokens is not None
    if not explicit and think + answer_max > room:
        if think_budget is None:
            think = min(think, max(0, (room - MIN_ANSWER_TOKENS) // 3))
        answer_max = max(0, room - think)
    if think + answer_max > room or answer_max < 1:
        raise UserError(
            f"the prompt ({prompt_tokens} tokens) plus the generation budget ({think + answer_max} tokens: "
            f"{think} to think, {answer_max} to answer) is {prompt_tokens + think + answer_max} tokens, "
            f"more than the model's context of {context} tokens; ask for fewer words or a smaller think budget"
        )
    return Budget(think=think, answer_max=answer_max, answer_min=answer_min)
