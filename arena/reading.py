"""How far an annotator read before voting: the page's report, trusted only as far as it can be checked.

The Arena page measures, per side:

- ``read``: the deepest point reached in the text, as a share of its length (0 to 1);
- ``seen``: the share of the text that was actually on screen at some moment (scrolled past).
  An outline jump to the end reaches the end (``read`` = 1) without showing what lies between;

and the active reading time (seconds the page was visible and in use while a battle was shown).
It sends them with the vote. A client can send anything, so the server clamps every number
(shares to 0..1, ``seen`` to at most ``read``, active time to the wall time since the battle
was assigned) and keeps its own wall time beside them. The too-fast rule counts the words seen;
a side reported without ``seen`` counts up to its ``read`` point, and a side not reported at
all (the CLI, an API caller, a page whose script did not run) counts whole, which is the rule
every vote followed before the page could tell.

Nothing here touches the database, Gradio or the clock.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core.errors import UserError

OUTLINE_EVERY_WORDS = 400
"""A text without headings gets an outline marker every this many words."""
IDLE_AFTER_S = 120
"""The page stops counting active time this long after the last scroll, key, click or pointer move."""

_FIELDS = ("read_left", "read_right", "seen_left", "seen_right", "active_seconds")


@dataclass(frozen=True)
class ReadingReport:
    """What the page says about reading one battle; ``None`` where it said nothing."""

    read_left: float | None = None
    read_right: float | None = None
    seen_left: float | None = None
    seen_right: float | None = None
    active_seconds: float | None = None

    def scrolled_past(self, side: str) -> float:
        """The share of ``side`` ("left"/"right") scrolled past: seen, else read, else the whole."""
        seen, read = (self.seen_left, self.read_left) if side == "left" else (self.seen_right, self.read_right)
        return seen if seen is not None else (read if read is not None else 1.0)


def _number(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"the reading report's {name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise UserError(f"the reading report's {name} must be a finite number")
    return number


def parse_reading(value: Any) -> ReadingReport:
    """A report from what the page sent: None or "" (no report), a dict, or a dict as JSON text.

    Unknown keys are ignored; a value of the wrong type is refused with a one-line UserError.
    Numbers are not clamped here (see :func:`clamp_reading`).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return ReadingReport()
    if isinstance(value, str):
        if len(value) > 1000:
            raise UserError("the reading report is too long (at most 1,000 characters)")
        try:
            value = json.loads(value)
        except ValueError:
            raise UserError("the reading report is not valid JSON") from None
    if not isinstance(value, dict):
        raise UserError(f"the reading report must be an object with {', '.join(_FIELDS)}")
    return ReadingReport(**{name: _number(name, value.get(name)) for name in _FIELDS})


def clamp_reading(report: ReadingReport, *, wall_seconds: float) -> ReadingReport:
    """The report with shares held to 0..1 (seen to at most read) and active time to 0..``wall_seconds``."""

    def share(value: float | None, most: float | None = None) -> float | None:
        if value is None:
            return None
        return round(min(1.0 if most is None else most, max(0.0, value)), 4)

    read_left, read_right = share(report.read_left), share(report.read_right)
    active = report.active_seconds
    if active is not None:
        active = round(min(max(0.0, wall_seconds), max(0.0, active)), 3)
    return ReadingReport(read_left=read_left, read_right=read_right,
                         seen_left=share(report.seen_left, read_left), seen_right=share(report.seen_right, read_right),
                         active_seconds=active)


def words_read(*, words_left: int, words_right: int, report: ReadingReport) -> float:
    """Words scrolled past on both sides: each side's words times its share scrolled past."""
    return words_left * report.scrolled_past("left") + words_right * report.scrolled_past("right")
