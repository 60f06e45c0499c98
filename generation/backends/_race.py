"""Waiting on a stream while a cancel event may fire: whichever comes first wins."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Optional

CANCELLED = object()
"""Returned instead of a value when the cancel event fired first."""


async def first_or_cancel(awaitable: Awaitable[Any], cancel: Optional[asyncio.Event]) -> Any:
    """Await ``awaitable`` unless ``cancel`` is set first; then the awaitable is cancelled and
    :data:`CANCELLED` returned. StopAsyncIteration and errors propagate unchanged."""
    if cancel is None:
        return await awaitable
    if cancel.is_set():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        return CANCELLED
    work = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({work, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        waiter.cancel()
    if work.done():
        return work.result()
    work.cancel()
    try:
        await work
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # this task was cancelled too: pass it on
            raise
    except Exception:
        pass
    return CANCELLED


async def next_or_cancel(iterator: AsyncIterator[Any], cancel: Optional[asyncio.Event]) -> Any:
    """The iterator's next item, :data:`CANCELLED`, or StopAsyncIteration at its end."""
    return await first_or_cancel(iterator.__anext__(), cancel)
