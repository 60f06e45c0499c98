"""The status sets of a stored text: what a finish reason makes of a row, which rows were written
to their end, which can be continued. The CLI, the batch runner and the Write tab ask here."""

from __future__ import annotations

from typing import Optional

from generation.control import LOOPING
from storage.models import GenerationStatus

STATUS_BY_FINISH = {"stop": GenerationStatus.complete.value, "target": GenerationStatus.complete.value,
                    "length": GenerationStatus.truncated.value, "cancelled": GenerationStatus.interrupted.value,
                    "short": GenerationStatus.short.value, "degenerate": GenerationStatus.truncated.value,
                    "looping": GenerationStatus.truncated.value}
"""A finish reason's row status. ``short``: the model ended far short of its target; ``degenerate``:
the text broke down and was stopped; ``looping``: it started repeating itself and was stopped (both
can be continued, like a cut one)."""
WRITTEN = (GenerationStatus.complete.value, GenerationStatus.truncated.value, GenerationStatus.short.value)
"""Statuses of a text that was written to its end (whatever the end): exit 0, batch lines."""
CONTINUABLE = (GenerationStatus.short.value, GenerationStatus.truncated.value, GenerationStatus.interrupted.value)
"""Statuses of a text Continue can grow (a complete one has nothing to add)."""
STREAMING = GenerationStatus.streaming.value


def status_of_finish(finish_reason: str | None) -> str:
    """The row status a stream's finish reason gives (complete for an unknown one)."""
    return STATUS_BY_FINISH.get(finish_reason or "", GenerationStatus.complete.value)


def loops_caught_note(params: Optional[dict], finish_reason: Optional[str]) -> str:
    """What the page and the CLI say of a planned text whose loops the guard stopped, section by
    section, while the text went on (``generation.agentwrite``): where, and what was done. Empty
    when there were none, or when the text itself ended ``looping`` (that has its own line)."""
    loops = (params or {}).get("loops") or []
    if not loops or finish_reason == LOOPING:
        return ""
    where = ", ".join(f"section {loop['section']} (about {loop['at_words']:,} words)" for loop in loops[:5])
    more = f" and {len(loops) - 5} more" if len(loops) > 5 else ""
    what = "it went on with the next section at a higher repetition penalty"
    return f"The loop guard stopped {len(loops)} looping section{'s' if len(loops) > 1 else ''}: {where}{more}; {what}."
