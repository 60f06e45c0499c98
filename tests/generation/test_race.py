"""``first_or_cancel``: a stream wait that a Stop button can end, and that Ctrl-C still ends."""

from __future__ import annotations

import asyncio

from generation.backends._race import CANCELLED, first_or_cancel


def test_the_cancel_event_wins_over_a_pending_item():
    async def go():
        cancel = asyncio.Event()
        waiting = asyncio.ensure_future(first_or_cancel(asyncio.sleep(60), cancel))
        await asyncio.sleep(0)
        cancel.set()
        return await waiting

    assert asyncio.run(go()) is CANCELLED


def test_a_task_cancelled_while_the_stream_winds_down_stays_cancelled():
    """The Stop event fired and the stream is winding down when Ctrl-C cancels the task itself:
    that second cancel must reach the caller, not be taken for the first one's echo."""
    async def go():
        cancel = asyncio.Event()
        winding_down = asyncio.Event()

        async def slow_to_stop():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                winding_down.set()
                for _ in range(5):  # a stream closing its connection takes a few turns
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        pass
                raise

        waiting = asyncio.ensure_future(first_or_cancel(slow_to_stop(), cancel))
        await asyncio.sleep(0)
        cancel.set()
        await winding_down.wait()
        waiting.cancel()
        await asyncio.wait({waiting}, timeout=30)  # a hang guard
        return waiting.cancelled()

    assert asyncio.run(go())
