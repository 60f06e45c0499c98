"""A checked request, ready to stream (:class:`Plan`), and what every template's preparation
starts from (:class:`Setup`).

``generation.service.prepare`` does the checks every template shares (the backend is reachable,
the model id is served, the request is rendered, the model's context and tokens per word are
known) and hands a :class:`Setup` to the template's own ``prepare`` (``generation.templates``),
which sets the budget and returns the :class:`Plan`. The plan carries its template, so whoever
runs it asks the template, not its name.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any, Optional

from core.errors import UserError
from generation.backends.base import Backend, BackendError, BackendRequest
from generation.length import Budget
from generation.rendering import Rendered
from generation.request import GenerationRequest


@dataclass
class Setup:
    """What ``prepare`` learnt before the template sets its budget."""

    request: GenerationRequest
    backend: Backend
    template: Any
    """The ``generation.templates.Template`` that writes the text (never ``auto``: auto has chosen)."""
    rendered: Rendered
    use_chat: bool
    context: int
    tokens_per_word: float
    prompt_tokens_at_most: int
    method: dict[str, Any] = field(default_factory=dict)
    """How the template was chosen (``asked``, ``why``), recorded in the row's params."""

    def seed(self) -> int:
        return self.request.seed if self.request.seed is not None else secrets.randbelow(2**31)

    async def exact_prompt_tokens(self) -> int:
        (tokens,) = await first_failure_raised(self.backend.prompt_tokens(probe(self.rendered, self.use_chat)))
        return tokens


@dataclass
class Plan:
    """A checked request, ready to stream: what to send, how much, with which template and seed."""

    request: GenerationRequest
    backend: Backend
    template: Any
    """The ``generation.templates.Template`` that runs this plan."""
    rendered: Rendered
    use_chat: bool
    budget: Budget
    tokens_per_word: float
    prompt_tokens: Optional[int]
    """The exact count when it was needed to plan the budget, else None until the server reports it."""
    context: int
    seed: int
    stats: dict[str, Any] = field(default_factory=dict)
    prompt_tokens_at_most: Optional[int] = None
    method: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_setup(cls, setup: Setup, budget: Budget, prompt_tokens: Optional[int]) -> "Plan":
        return cls(setup.request, setup.backend, setup.template, setup.rendered, setup.use_chat, budget,
                   setup.tokens_per_word, prompt_tokens, setup.context, setup.seed(),
                   prompt_tokens_at_most=setup.prompt_tokens_at_most, method=dict(setup.method))

    @property
    def prefill(self) -> str:
        return self.rendered.prefill if self.use_chat else ""

    @property
    def with_think(self) -> bool:
        return self.template.thinks

    def params(self) -> dict[str, Any]:
        """Everything needed to reproduce the generation, for the row's ``params``."""
        return {
            **self.request.params(), "seed": self.seed, "template": self.template.name,
            **({"method": self.method} if self.method else {}),
            "language": self.rendered.language, "api": "chat" if self.use_chat else "completions",
            "budget": {"think": self.budget.think, "answer_max": self.budget.answer_max, "answer_min": self.budget.answer_min},
            "tokens_per_word": round(self.tokens_per_word, 4), "prompt_tokens": self.prompt_tokens,
            **({"prompt_tokens_at_most": self.prompt_tokens_at_most} if self.prompt_tokens is None else {}),
            "context": self.context,
        }


def probe(rendered: Rendered, use_chat: bool) -> BackendRequest:
    """The prompt as the first request sends it, for counting its tokens."""
    return BackendRequest(prompt=rendered.raw, system=rendered.system, user=rendered.user,
                          assistant=rendered.prefill if use_chat else "", use_chat=use_chat, max_tokens=1)


async def first_failure_raised(*calls) -> list:
    """Run ``calls`` at once; a BackendError becomes a UserError. The first failure (in order) is raised."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BackendError):
            raise UserError(str(result)) from None
        if isinstance(result, BaseException):
            raise result
    return results
