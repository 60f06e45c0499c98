"""The stall limit: a request whose backend sends nothing for N seconds is ended.

A server can hang at any point of a request: accept the connection and never answer (no
headers, no model card, no token), or stop after its first tokens (a wedged worker, a dropped
connection that never closes). The client's read timeout is minutes long, and meanwhile the
page shows only heartbeats and ``lwz generate`` waits. :class:`StallGuarded` wraps any backend
so that every call to it, and its stream from the connect to the last token, raises
:class:`BackendError` once nothing has come for ``seconds``; the service turns that into an
``Error`` event and the row ends ``interrupted`` (``failed`` when nothing was written).

Waiting for one's turn is not a stall: a ``Queued`` item (the local model's queue) stops the
clock until the next item comes. The in-process local backend is guarded only between tokens
(``from_start=False``): loading its weights and reading a long prompt on a CPU take minutes and
are not a server that went silent. ``seconds`` comes from ``--stall-seconds`` (``lwz serve``),
else the ``LWZ_STALL_SECONDS`` environment variable, else 60; 0 turns the limit off. A vLLM
server that keeps requests in its own queue longer than the limit needs a larger one.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from typing import Any, AsyncIterator, Optional

from core.errors import UserError
from generation.backends.base import Backend, BackendError, BackendRequest, StreamItem
from generation.events import Queued

DEFAULT_STALL_SECONDS = 60.0
ENV_VAR = "LWZ_STALL_SECONDS"
_configured: Optional[float] = None


def parse_stall_seconds(value: Any, *, source: str) -> float:
    """``value`` as a stall limit in seconds (0 = off), or UserError naming ``source``."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{source} must be a number of seconds (0 turns the stall limit off), got {value!r}") from None
    if not 0 <= seconds <= 86_400 or seconds != seconds:
        raise UserError(f"{source} must be between 0 and 86400 seconds (0 turns the stall limit off), got {value!r}")
    return seconds


def configure(seconds: Optional[float]) -> None:
    """Set this process's stall limit (``lwz serve --stall-seconds``); None goes back to the default."""
    global _configured
    _configured = None if seconds is None else parse_stall_seconds(seconds, source="--stall-seconds")


def stall_seconds() -> float:
    """The stall limit in force: the configured value, else ``LWZ_STALL_SECONDS``, else 60."""
    if _configured is not None:
        return _configured
    raw = os.environ.get(ENV_VAR, "").strip()
    return parse_stall_seconds(raw, source=ENV_VAR) if raw else DEFAULT_STALL_SECONDS


def _stalled(seconds: float) -> BackendError:
    return BackendError(f"the model sent no token for {seconds:g} s and was stopped (stall limit; "
                        f"set it with lwz serve --stall-seconds or {ENV_VAR})")


async def guard(items: AsyncIterator[StreamItem], seconds: float, *, from_start: bool = True) -> AsyncIterator[StreamItem]:
    """``items`` passed through; BackendError when none comes for ``seconds``.

    The clock runs from the first wait (``from_start``; else from the first item) and restarts
    with every item; after a ``Queued`` item it stops until the next one comes.
    """
    running = from_start
    async with aclosing(items) as stream:
        iterator = stream.__aiter__()
        while True:
            try:
                if running and seconds > 0:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that lands in the
                    # same loop turn as the item (Ctrl-C was then ignored mid-stream)
                    async with asyncio.timeout(seconds):
                        item = await iterator.__anext__()
                else:
                    item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _stalled(seconds) from None
            running = not isinstance(item, Queued)
            yield item


class StallGuarded:
    """``backend`` with the stall limit on its stream; everything else is the backend's own."""

    def __init__(self, backend: Backend, seconds: Optional[float] = None, *, from_start: bool = True) -> None:
        self.inner = backend
        self.seconds = seconds
        self.from_start = from_start
        self.description = backend.description

    def _limit(self) -> float:
        return stall_seconds() if self.seconds is None else self.seconds

    async def _bounded(self, call):
        """``await call`` within the limit (a server that accepts and never answers ends here too)."""
        seconds = self._limit()
        if not self.from_start or seconds <= 0:
            return await call
        try:
            async with asyncio.timeout(seconds):
                return await call
        except TimeoutError:
            raise _stalled(seconds) from None

    def stream(self, request: BackendRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamItem]:
        return guard(self.inner.stream(request, cancel=cancel), self._limit(), from_start=self.from_start)

    async def count_tokens(self, text: str) -> int:
        return await self._bounded(self.inner.count_tokens(text))

    async def context_length(self) -> int:
        return await self._bounded(self.inner.context_length())

    async def prompt_tokens(self, request: BackendRequest) -> int:
        return await self._bounded(self.inner.prompt_tokens(request))

    async def prompt_tokens_at_most(self, request: BackendRequest) -> int:
        return await self._bounded(self.inner.prompt_tokens_at_most(request))

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # backend-specific extras (the local queue's length)
