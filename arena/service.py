"""What the Arena tab does, as plain functions over an engine and a user id (no Gradio here).

The tab's handlers, the CLI, the tests and the benchmark all call these. Every function
opens its own transaction and takes the annotator's id from the caller, which has already
resolved it from ``request.username``; nothing per user is kept in memory.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import session_scope, write_scope
from arena.rules import ArenaSettings, cast_vote
from core.errors import UserError

EMPTY_POOL_MESSAGE = (
    "The battle pool is empty. Fill it with "
    "`lwz battles fill --prompts FILE.jsonl --models A,B --per-prompt 1`, "
    "or send texts from the Write tab."
)
"""What a researcher or admin reads when no battle can be shown: they run the CLI and write."""
ANNOTATOR_EMPTY_POOL_MESSAGE = (
    "No battles are waiting yet: texts enter the arena when the team running it fills the pool, or "
    "when writers send their texts. Press Next battle again later, or tell whoever gave you your "
    "account that the pool is empty."
)
"""What an annotator reads: they have no CLI and no Write tab, so nothing to run."""


def empty_pool_message(role: str | None) -> str:
    """The empty-pool message for ``role``: each names only what that role can do."""
    return ANNOTATOR_EMPTY_POOL_MESSAGE if role == "annotator" else EMPTY_POOL_MESSAGE
DONE_MESSAGE = "You have read every battle available to you. Thank you! Come back when the pool grows."


@dataclass
class PoolRefresher:
    """Forms battles from newly pooled texts at most every ``settings.refresh_s`` seconds per process."""

    settings: ArenaSettings
    _last: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def maybe_refresh(self, engine: Engine, *, force: bool = False) -> int:
        now = time.monotonic()
        if not force and now - self._last < self.settings.refresh_s:
            return 0
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            self._last = now
            return refresh_pool(engine, settings=self.settings)
        finally:
            self._lock.release()


def refresh_pool(engine: Engine, *, settings: ArenaSettings) -> int:
    """Form battles for pool texts that have none yet; returns how many battles were created."""
    from storage.arena import unpaired_pool_count
    from arena.pool import form_battles, load_name_words

    with session_scope(engine) as session:
        if unpaired_pool_count(session) == 0:
            return 0
    with write_scope(engine) as session:
        seed = settings.seed + int(time.time())
        return len(form_battles(session, seed=seed, name_words=load_name_words(settings.name_words_file)))


@dataclass(frozen=True)
class _Showable:
    loaded: float
    last_battle: int
    candidates: list
    weights: list[float]


_SHOWABLE: "weakref.WeakKeyDictionary[Engine, _Showable]" = weakref.WeakKeyDictionary()
_SHOWABLE_LOCK = threading.Lock()


def showable_battles(session, engine: Engine, *, settings: ArenaSettings):
    """Every battle that can be shown (as :class:`arena.pairing.Candidate`) and its pair-selection weight
    (uncertainty from vote counts), reused for ``settings.candidates_s`` seconds while no battle was formed.

    Reading them costs a join over all battles and a count over all votes, which every Next battle
    would otherwise pay; a stale vote count only shifts pair-selection weights.
    """
    from arena.pairing import Candidate, battle_weights, uncertainty_from_counts, votes_per_model
    from storage.arena import battle_candidates, last_battle_id

    last = last_battle_id(session)
    cached = _SHOWABLE.get(engine)
    now = time.monotonic()
    if cached is None or cached.last_battle != last or now - cached.loaded > settings.candidates_s:
        candidates = [Candidate(**row) for row in battle_candidates(session)]
        widths = uncertainty_from_counts(votes_per_model(candidates))
        cached = _Showable(now, last, candidates, battle_weights(candidates, widths))
        with _SHOWABLE_LOCK:
            _SHOWABLE[engine] = cached
    return cached.candidates, cached.weights


def forget_showable(engine: Engine) -> None:
    with _SHOWABLE_LOCK:
        _SHOWABLE.pop(engine, None)


def next_battle(
    engine: Engine, *, annotator_id: int, settings: ArenaSettings, uncertainty: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The annotator's open battle, or a newly assigned one; never a model name.

    ``uncertainty`` maps models to rating interval widths (from the ratings, when a caller has
    them); without it, widths come from how many votes each model's battles have.

    Returns ``{"battle": view}`` (see :func:`storage.arena.battle_view`) or ``{"message": text}``
    when the pool is empty or the annotator has read everything. A battle whose generation was
    deleted is skipped (its assignment marked skipped) and the next one is tried. One read
    transaction, and a second that writes only when a battle is assigned or skipped.
    """
    from arena.pairing import choose_battle
    from storage.arena import assign, battle_view, given_battle_ids, open_battle_id, skip_assignment

    for _ in range(50):
        with session_scope(engine) as session:
            current = open_battle_id(session, annotator_id=annotator_id)
            if current is not None:
                view = battle_view(session, battle_id=current)
                if view is not None:
                    return {"battle": view}
            else:
                candidates, weights = showable_battles(session, engine, settings=settings)
                if not candidates:
                    from storage.models import User

                    return {"message": empty_pool_message(session.execute(
                        sa.select(User.role).where(User.id == annotator_id)).scalar())}
                given = given_battle_ids(session, annotator_id=annotator_id)
                rng = random.Random(f"{settings.seed}:{annotator_id}:{len(given)}")
                choice = choose_battle(candidates, annotator_id=annotator_id, already_given=given, rng=rng,
                                       uncertainty=uncertainty, weights=None if uncertainty else weights)
                if choice is None:
                    return {"message": DONE_MESSAGE}
        try:
            with write_scope(engine) as session:
                if current is not None:  # its battle lost a side: skip it and look again
                    skip_assignment(session, battle_id=current, annotator_id=annotator_id)
                    continue
                if open_battle_id(session, annotator_id=annotator_id) is not None:
                    continue  # the same user's other request assigned one a moment ago; read it back
                view = battle_view(session, battle_id=choice.battle_id)
                if view is None:  # lost a side since the list was read: never assign it
                    forget_showable(engine)
                    continue
                assign(session, battle_id=choice.battle_id, annotator_id=annotator_id)
            return {"battle": view}
        except sa.exc.IntegrityError:
            continue  # the same user's other request assigned it a moment ago; read it back
    raise UserError("could not find a battle to show; try again")


def _cast(session, *, annotator_id: int, battle_id: int, winner: str, criteria, reason, settings: ArenaSettings,
          reading) -> dict[str, Any]:
    from storage.arena import annotator_counts

    vote = cast_vote(session, battle_id=battle_id, annotator_id=annotator_id, winner=winner, criteria=criteria,
                     reason=reason, words_per_minute=settings.words_per_minute, reading=reading)
    return {"vote_id": vote.vote_id, "battle_id": battle_id, "winner": vote.winner, "created": vote.created,
            "flagged": vote.flagged, "counts": annotator_counts(session, annotator_id=annotator_id)}


def submit_vote(
    engine: Engine, *, annotator_id: int, battle_id: int, winner: str,
    criteria: dict[str, str] | None = None, reason: str | None = None, settings: ArenaSettings,
    reading: Any = None,
) -> dict[str, Any]:
    """Store a vote (see :func:`arena.rules.cast_vote`); returns an acknowledgement without names.

    ``reading``: the page's reading report (see :mod:`arena.reading`), or None.

    ``{"vote_id", "battle_id", "winner", "created", "flagged", "counts"}``: ``created`` is False
    when this repeats an earlier vote, in which case the first vote is what is returned;
    ``counts`` are the annotator's tallies (see :func:`my_counts`) including this vote.
    """
    with write_scope(engine) as session:
        return _cast(session, annotator_id=annotator_id, battle_id=battle_id, winner=winner, criteria=criteria,
                     reason=reason, settings=settings, reading=reading)


def vote_and_reveal(
    engine: Engine, *, annotator_id: int, battle_id: int, winner: str,
    criteria: dict[str, str] | None = None, reason: str | None = None, settings: ArenaSettings,
    reading: Any = None,
) -> dict[str, Any]:
    """:func:`submit_vote`'s acknowledgement plus ``"reveal"`` (see :func:`reveal_battle`), in one transaction.

    The reveal is read from the stored vote's row after the insert, and handed back only once the
    transaction committed: a vote the rules refuse, or one that fails to commit, reveals nothing.
    """
    from storage.arena import battle_reveal

    with write_scope(engine) as session:
        ack = _cast(session, annotator_id=annotator_id, battle_id=battle_id, winner=winner, criteria=criteria,
                    reason=reason, settings=settings, reading=reading)
        ack["reveal"] = battle_reveal(session, battle_id=battle_id, annotator_id=annotator_id)
    return ack


def skip_battle(engine: Engine, *, annotator_id: int, battle_id: int) -> bool:
    from storage.arena import skip_assignment

    with write_scope(engine) as session:
        return skip_assignment(session, battle_id=battle_id, annotator_id=annotator_id)


def reveal_battle(engine: Engine, *, annotator_id: int, battle_id: int) -> dict[str, Any]:
    """Model names and word counts, read from the database after the vote is stored."""
    from storage.arena import battle_reveal

    with session_scope(engine) as session:
        return battle_reveal(session, battle_id=battle_id, annotator_id=annotator_id)


def my_counts(engine: Engine, *, annotator_id: int) -> dict[str, int]:
    from storage.arena import annotator_counts

    with session_scope(engine) as session:
        return annotator_counts(session, annotator_id=annotator_id)


def blinded_generation_ids(session, *, annotator_id: int) -> set[int]:
    """Generations of battles given to this user and neither voted on nor skipped yet.

    Whoever holds such an assignment must not learn which models wrote it, anywhere: the Data
    tab hides their model, and reopening them is refused, until the vote (or a skip) is stored.
    """
    from storage.models import Assignment, Battle, Vote

    voted = sa.select(Vote.id).where(Vote.battle_id == Assignment.battle_id, Vote.annotator_id == annotator_id)
    rows = session.execute(
        sa.select(Battle.left_generation_id, Battle.right_generation_id)
        .join(Assignment, Assignment.battle_id == Battle.id)
        .where(Assignment.annotator_id == annotator_id, Assignment.skipped.is_(False), ~sa.exists(voted))
    ).all()
    return {gid for row in rows for gid in row if gid is not None}


def battles_of(engine: Engine, *, generation_id: int, settings: ArenaSettings) -> int:
    """Form battles for the pool now, then count the battles ``generation_id`` is in.

    Called right after a writer sends a text, so a second text for the same request by another
    model makes a battle at once instead of at the next periodic refresh.
    """
    from storage.models import Battle

    refresh_pool(engine, settings=settings)
    with session_scope(engine) as session:
        return session.execute(
            sa.select(sa.func.count(Battle.id)).where(
                sa.or_(Battle.left_generation_id == generation_id, Battle.right_generation_id == generation_id))
        ).scalar_one()
