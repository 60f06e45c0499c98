"""One backend request, streamed: the loop every template runs its requests through.

It opens the backend's stream, passes its items on (``Queued``, ``Delta``, ``Finish``), closes
the server request when the caller stops listening (``aclosing``: a closed stream aborts the
request), and turns a ``BackendError`` into one ``Error`` event as the last item, so a template
never writes its own ``try``/``except`` around a server.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import AsyncIterator, Optional, Union

from generation.backends.base import Backend, BackendError, BackendRequest, Delta, Finish
from generation.events import Error, Queued

StreamedItem = Union[Queued, Delta, Finish, Error]


async def stream_request(backend: Backend, call: BackendRequest, *,
                         cancel: Optional[asyncio.Event] = None) -> AsyncIterator[StreamedItem]:
    """The items of one request; a backend failure ends it with an ``Error`` event."""
    try:
        async with aclosing(backend.stream(call, cancel=cancel)) as items:
            async for item in items:
                yield item
    except BackendError as exc:
        yield Error(str(exc))
