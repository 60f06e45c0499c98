"""Typed stream events. Backends and the parser yield them; UIs and CLIs only render them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class Think:
    """A chunk of the plan (the ``<think>`` part)."""

    text: str


@dataclass(frozen=True)
class Answer:
    """A chunk of the written work (the ``<answer>`` part)."""

    text: str


@dataclass(frozen=True)
class Done:
    """The stream ended. ``finish_reason`` is the server's ("stop", "length"), "cancelled", or
    "target" (length control ended the answer at a sentence end once it reached its target)."""

    finish_reason: Optional[str]
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None


@dataclass(frozen=True)
class Error:
    """The stream failed; ``message`` is one line a user can act on."""

    message: str


@dataclass(frozen=True)
class Queued:
    """The request waits for the embedded model; ``position`` 1 means next."""

    position: int


@dataclass(frozen=True)
class Started:
    """A generation row was created (only from ``generate_and_store``)."""

    generation_id: int


Event = Union[Think, Answer, Done, Error, Queued, Started]
