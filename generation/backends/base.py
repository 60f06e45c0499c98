"""The backend protocol: one streaming call, typed deltas out, cancellable.

A backend knows nothing of templates, tags or the database. It receives a rendered request
(a raw prompt, or chat messages whose last assistant turn is continued), streams text deltas,
and ends with one :class:`Finish`. Failures are raised as :class:`BackendError` with a
one-line message; the service turns them into ``Error`` events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional, Protocol, Union

from generation.events import Queued
from generation.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P


class BackendError(Exception):
    """The backend failed (unreachable, unknown model, died mid-stream); the message is one line."""


@dataclass
class BackendRequest:
    """What to generate. ``prompt`` is the raw completion prompt; ``system``/``user``/``assistant``
    the chat form, the assistant text being continued (pre-fill plus anything written so far).
    ``use_chat`` picks the form for backends that support both."""

    prompt: str
    system: str
    user: str
    assistant: str
    use_chat: bool
    max_tokens: int
    min_tokens: int = 0
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    seed: Optional[int] = None
    repetition_penalty: Optional[float] = None
    stop: list[str] = field(default_factory=list)
    bad_words: list[str] = field(default_factory=list)
    """Strings the model may not write (a server that supports it bans them): the stop strings,
    while an answer is held open to its minimum length."""


@dataclass(frozen=True)
class Delta:
    """New text; ``tokens`` is how many tokens it holds when the backend knows (else None), and
    ``prompt_tokens`` the prompt's length once the server has reported it (else None)."""

    text: str
    tokens: Optional[int] = None
    prompt_tokens: Optional[int] = None


@dataclass(frozen=True)
class Finish:
    """The request ended: ``finish_reason`` is "stop", "length" or "cancelled"."""

    finish_reason: str
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None


StreamItem = Union[Delta, Finish, Queued]


class Backend(Protocol):
    """What the service needs from a backend."""

    description: str

    def stream(self, request: BackendRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamItem]:
        """Deltas (and, for queued backends, Queued positions), then exactly one Finish."""

    async def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's own tokenizer (no special tokens)."""

    async def context_length(self) -> int:
        """The model's context window in tokens."""

    async def prompt_tokens(self, request: BackendRequest) -> int:
        """Tokens of the full prompt as the model will see it (chat template applied, or raw)."""

    async def prompt_tokens_at_most(self, request: BackendRequest) -> int:
        """An upper bound on ``prompt_tokens(request)``, cheaper to get (it may be the exact count)."""


class StopFilter:
    """Cuts streamed text at the first stop string (dropping it, as servers do), holding back a
    tail that may still grow into one."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._buffer = ""
        self.stopped = False

    def push(self, text: str) -> str:
        if self.stopped:
            return ""
        self._buffer += text
        hits = [i for i in (self._buffer.find(s) for s in self.stops) if i != -1]
        if hits:
            out, self._buffer, self.stopped = self._buffer[: min(hits)], "", True
            return out
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self._buffer)), 0, -1):
                if self._buffer.endswith(stop[:k]):
                    hold = max(hold, k)
                    break
        cut = len(self._buffer) - hold
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out

    def flush(self) -> str:
        out, self._buffer = ("" if self.stopped else self._buffer), ""
        return out
