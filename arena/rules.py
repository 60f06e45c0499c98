"""The arena's rules: its settings, what a vote may hold, who may cast it, and when it is too fast.

Every vote, from the Arena tab, the CLI or a raw POST, goes through :func:`cast_vote`, so these
rules hold wherever a vote comes from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlmodel import Session

from arena.reading import ReadingReport, clamp_reading, parse_reading, words_read
from core.errors import UserError
from storage.models import utcnow
from storage.votes import VALID_WINNERS

CRITERIA = ("length_fit", "coherence", "structure", "style")
"""The optional per-criterion choices a vote may carry (each left, right or tie)."""
MAX_REASON_CHARS = 5000
"""The longest free-text reason a vote may carry."""


@dataclass(frozen=True)
class ArenaSettings:
    """Arena rules of one server process.

    ``words_per_minute``: reading speed used to flag votes cast faster than both answers can be
    read (``LWZ_ARENA_WPM``, default 1,000). ``name_words_file``: a word list of model and vendor
    names (``LWZ_ARENA_NAME_WORDS``, default: the built-in list). ``seed``: base seed for side
    order and pair selection (``LWZ_ARENA_SEED``). ``refresh_s``: how often at most new pool
    texts are formed into battles while serving. ``candidates_s``: how long a process reuses the
    list of showable battles and their vote counts for pair selection (a newly formed battle is
    seen at once; a vote count or a deleted text up to this late).
    """

    words_per_minute: float = 1000.0
    name_words_file: str | None = None
    seed: int = 0
    refresh_s: float = 10.0
    candidates_s: float = 2.0

    def __post_init__(self):
        if not self.words_per_minute > 0:
            raise UserError(f"reading speed must be positive words per minute, got {self.words_per_minute}")

    @classmethod
    def from_env(cls) -> "ArenaSettings":
        try:
            wpm = float(os.environ.get("LWZ_ARENA_WPM", "1000"))
            seed = int(os.environ.get("LWZ_ARENA_SEED", "0"))
        except ValueError as exc:
            raise UserError(f"bad arena setting in the environment: {exc}") from None
        return cls(words_per_minute=wpm, name_words_file=os.environ.get("LWZ_ARENA_NAME_WORDS") or None, seed=seed)


FLOOR_WORDS_PER_SECOND = 25.0
"""The reading-speed ceiling behind the server's floor: 1,500 words a minute. Skimming runs at
about 600-700 words a minute (Rayner et al., "So much to read, so little time", 2016); twice that
leaves room for a fast reader who skips, and nobody judges two texts faster."""
FLOOR_WORDS_PER_SIDE = 1000
"""The floor counts at most this many words of each side: whoever votes has at least read the
opening of both texts. Beyond it the page's reading report and ``words_per_minute`` judge (an
annotator may fairly stop reading two 20,000-word texts once one has broken down)."""


def floor_seconds(*, words_left: int, words_right: int, words_per_minute: float = 0.0) -> float:
    """The least time a vote on texts of these lengths can take, whatever the page reports.

    The speed is :data:`FLOOR_WORDS_PER_SECOND`, or the arena's ``words_per_minute`` where that is
    faster: the floor never asks more than the reading rule does (a deployment, or a script
    that votes at once on purpose, raises ``LWZ_ARENA_WPM`` to lower both).
    """
    counted = min(max(words_left, 0), FLOOR_WORDS_PER_SIDE) + min(max(words_right, 0), FLOOR_WORDS_PER_SIDE)
    return counted / max(FLOOR_WORDS_PER_SECOND, words_per_minute / 60.0)


def vote_flags(*, seconds: float, words_left: int, words_right: int, report: ReadingReport,
               words_per_minute: float) -> list[str]:
    """The flags a vote gets: ``too_fast`` when it came sooner than the server's floor
    (:func:`floor_seconds`, with ``under_floor`` beside it) or sooner than reading the words the
    page says were scrolled past at ``words_per_minute``.

    ``seconds`` is the server's time from assignment to vote. The page's report can only add a
    flag: a report of nothing read lowers the words it counts, never the floor.
    """
    under_floor = seconds < floor_seconds(words_left=words_left, words_right=words_right,
                                          words_per_minute=words_per_minute)
    words = words_read(words_left=words_left, words_right=words_right, report=report)
    flags = []
    if under_floor or too_fast(seconds=seconds, words=words, words_per_minute=words_per_minute):
        flags.append("too_fast")
    if under_floor:
        flags.append("under_floor")
    return flags


def too_fast(*, seconds: float, words: float, words_per_minute: float) -> bool:
    """True when ``seconds`` is less than reading ``words`` at ``words_per_minute`` takes.

    ``words`` are the words scrolled past (see :func:`arena.reading.words_read`), not the texts'
    total: an annotator who reads half of two long texts and votes is judged on that half.
    """
    return seconds < words / max(words_per_minute, 1e-9) * 60.0


def validate_vote_input(
    *, winner: str, criteria: dict[str, str] | None, reason: str | None
) -> tuple[dict[str, str], str | None]:
    """Check a vote's fields; return cleaned ``(criteria, reason)``. UserError says what is wrong.

    Values of the wrong type (a raw POST can send anything) and a NUL character in the reason
    (PostgreSQL cannot store it) are refused here, before anything reaches the database.
    """
    if not isinstance(winner, str) or winner not in VALID_WINNERS:
        raise UserError(f"invalid choice {str(winner)[:40]!r}: choose one of {', '.join(VALID_WINNERS)}")
    if criteria is not None and not isinstance(criteria, dict):
        raise UserError("the criteria must be a mapping of criterion to left, right or tie")
    if reason is not None and not isinstance(reason, str):
        raise UserError("the reason must be text")
    if reason is not None and "\x00" in reason:
        raise UserError("the reason contains a NUL character; remove it")
    cleaned: dict[str, str] = {}
    for key, value in (criteria or {}).items():
        if not isinstance(key, str) or not (value is None or isinstance(value, str)):
            raise UserError(f"invalid criterion {str(key)[:40]!r}: use {', '.join(CRITERIA)} with left, right or tie")
        if key not in CRITERIA:
            raise UserError(f"unknown criterion {key!r}: use {', '.join(CRITERIA)}")
        if value in (None, ""):
            continue
        if value not in ("left", "right", "tie"):
            raise UserError(f"invalid choice {value!r} for {key}: choose left, right or tie")
        cleaned[key] = value
    if reason is not None:
        reason = reason.strip() or None
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise UserError(f"the reason has {len(reason):,} characters; the limit is {MAX_REASON_CHARS:,}")
    return cleaned, reason


@dataclass(frozen=True)
class CastVote:
    """A stored vote as :func:`cast_vote` answers it: the vote that stands, and whether this call stored it."""

    vote_id: int
    winner: str
    flagged: bool
    created: bool


def cast_vote(
    session: Session,
    *,
    battle_id: int,
    annotator_id: int,
    winner: str,
    criteria: dict[str, str] | None = None,
    reason: str | None = None,
    words_per_minute: float = 1000.0,
    reading: ReadingReport | dict | str | None = None,
) -> CastVote:
    """Store an annotator's vote on a battle assigned to them.

    Refused (UserError) for a battle not assigned to this annotator, a skipped one, or one whose
    generation was deleted. A repeated vote (double click, replayed POST, a race between two
    requests) returns the first vote unchanged with ``created=False``: the database's unique
    constraint decides (see :func:`storage.arena.insert_vote_once`), so the caller's transaction
    stays usable.
    Reading time runs from assignment to now (the server's clock). ``reading`` is the page's
    report (see :mod:`arena.reading`): each side's read and seen shares and the active reading
    time, clamped here and stored with the vote. A vote faster than the server's floor, or than
    reading the words scrolled past at ``words_per_minute``, is stored with the flag ``too_fast``
    (and so left out of ratings); see :func:`vote_flags`.
    """
    from storage.arena import insert_vote_once, vote_context

    criteria, reason = validate_vote_input(winner=winner, criteria=criteria, reason=reason)
    report = reading if isinstance(reading, ReadingReport) else parse_reading(reading)
    context = vote_context(session, battle_id=battle_id, annotator_id=annotator_id)
    if context is not None and context["vote"] is not None:
        return CastVote(*context["vote"], created=False)
    if context is None:
        raise UserError(f"battle {battle_id} is not assigned to you: load a battle in the Arena tab first")
    if context["skipped"]:
        raise UserError(f"battle {battle_id} was skipped; it can no longer be voted on")
    if None in context["sides"]:
        raise UserError(f"battle {battle_id} is no longer available (a text was deleted); press Next")
    seconds = max(0.0, (utcnow() - context["assigned_at"]).total_seconds())
    report = clamp_reading(report, wall_seconds=seconds)
    left_words, right_words = context["words"]
    flags = vote_flags(seconds=seconds, words_left=left_words, words_right=right_words, report=report,
                       words_per_minute=words_per_minute)
    return CastVote(*insert_vote_once(
        session, battle_id=battle_id, annotator_id=annotator_id, winner=winner, criteria=criteria, reason=reason,
        reading_seconds=round(seconds, 3), flags=flags, read_left=report.read_left, read_right=report.read_right,
        seen_left=report.seen_left, seen_right=report.seen_right, active_seconds=report.active_seconds,
    ))
