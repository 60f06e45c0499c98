"""The stall limit: a generation whose backend sends no token for N seconds is ended.

A server can hang after its first tokens (a wedged worker, a dropped connection that never
closes); the client's read timeout is minutes long, and meanwhile the page shows only
heartbeats. :class:`StallGuarded` wraps any backend so that its stream raises
:class:`BackendError` once no item has come for ``seconds``; the service turns that into an
``Error`` event and the row ends ``interrupted`` (``failed`` when nothing was written).

The clock runs only after the first token of a request: waiting for one's turn in a queue, or
for a long prompt to be read, is not a stall. ``seconds`` comes from ``--stall-seconds`` (``lwz
serve``), else the ``LWZ_STALL_SECONDS`` environment variable, else 60; 0 turns the limit off.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing
from typing import Any, AsyncIterator, Optional

from core.errors import UserError
from generation.backends.base import Backend, BackendError, BackendRequest, Delta, StreamItem

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


async def guard(items: AsyncIterator[StreamItem], seconds: float) -> AsyncIterator[StreamItem]:
    """``items`` passed through; BackendError when, after the first token, none comes for ``seconds``."""
    started = False
    async with aclosing(items) as stream:
        iterator = stream.__aiter__()
        while True:
            try:
                if started and seconds > 0:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that lands in the
                    # same loop turn as the item (Ctrl-C was then ignored mid-stream)
                    async with asyncio.timeout(seconds):
                        item = await iterator.__anext__()
                else:
                    item = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise BackendError(
                    f"the model sent no token for {seconds:g} s and was stopped (stall limit; "
                    f"set it with lwz serve --stall-seconds or {ENV_VAR})") from None
            if isinstance(item, Delta):
                started = True
            yield item


class StallGuarded:
    """``backend`` with the stall limit on its stream; everything else is the backend's own."""

    def __init__(self, backend: Backend, seconds: Optional[float] = None) -> None:
        self.inner = backend
        self.seconds = seconds
        self.description = backend.description

    def stream(self, request: BackendRequest, *, cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamItem]:
        seconds = stall_seconds() if self.seconds is None else self.seconds
        return guard(self.inner.stream(request, cancel=cancel), seconds)

    async def count_tokens(self, text: str) -> int:
        return await self.inner.count_tokens(text)

    async def context_length(self) -> int:
        return await self.inner.context_length()

    async def prompt_tokens(self, request: BackendRequest) -> int:
        return await self.inner.prompt_tokens(request)

    async def prompt_tokens_at_most(self, request: BackendRequest) -> int:
        return await self.inner.prompt_tokens_at_most(request)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)  # backend-specific extras (the local queue's length)
