"""Which votes count, and what a battle's verdict is: the one owner of both.

Every reader of the votes asks here: the leaderboard (``evaluation.leaderboard``), the annotator
agreement figures, the judge cross-check's human side (``evaluation.crosscheck``) and every
training export (``training.preferences``). Two owners once disagreed: votes ``[right, tie, tie]``
gave "right" in training exports and "tie" in the cross-check, and battles whose text names a
model left the leaderboard but stayed in training exports.

**The votes that count** (:class:`CountedVotes`): a vote counts unless

- it is flagged (the arena's ``too_fast`` flag and the like),
- its annotator is flagged (``users.flagged``) or under an active ban (``annotator_bans``),
- its battle is not blind: a text names a model or vendor (``battles.extra["names_model"]``,
  set by the arena when it forms the battle),
- it falls outside ``[since, until)``.

Each rule can be relaxed by a field, for a researcher who asks on purpose (the annotator report
reads every vote: reliability is about the annotators, not about blindness).

**The verdict of a battle** (:func:`verdict_of`) from its counted votes:

- ``both_bad`` when both-bad votes outnumber left, right and tie each;
- otherwise the plurality of the *decisive* votes (left vs right): ``[right, tie, tie]`` and
  ``[right, both_bad]`` give ``right``, whatever the position; a tie voter prefers neither side,
  so they do not outvote the annotator who did;
- otherwise ``tie`` (no decisive vote, or as many for each side).

This sits in ``storage/`` so that every floor that reads votes (``evaluation``, ``training``)
can ask it without importing one another.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage.engine import driver_rows
from storage.models import AnnotatorBan, Battle, User, Vote

VERDICTS = ("left", "right", "tie", "both_bad")
"""A battle's possible verdicts; ``tie`` and ``both_bad`` pick no side."""


def banned_annotators_query():
    """A SELECT of the user ids under an active ban (for ``Vote.annotator_id.not_in(...)`` filters)."""
    return sa.select(AnnotatorBan.user_id).where(AnnotatorBan.lifted_at.is_(None))


def named_battles_query():
    """A SELECT of the ids of battles whose text names a model or vendor (not blind)."""
    return sa.select(Battle.id).where(Battle.extra["names_model"].as_boolean().is_(True))


@dataclass(frozen=True)
class CountedVotes:
    """Which votes count (see the module docstring); every ``include_*`` relaxes one rule."""

    include_flagged_votes: bool = False
    include_flagged_annotators: bool = False
    include_banned: bool = False
    include_named: bool = False
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[Any]:
        """WHERE conditions on ``votes`` (subqueries only, so any query over ``Vote`` can take them)."""
        out = []
        if not self.include_flagged_votes:
            # IS NOT TRUE, not = FALSE: SQLite would walk the flagged index, which nearly every vote matches.
            out.append(Vote.flagged.is_not(True))
        if not self.include_flagged_annotators:
            out.append(Vote.annotator_id.not_in(sa.select(User.id).where(User.flagged.is_(True))))
        if not self.include_banned:
            out.append(Vote.annotator_id.not_in(banned_annotators_query()))
        if not self.include_named:
            out.append(Vote.battle_id.not_in(named_battles_query()))
        if self.since is not None:
            out.append(Vote.created_at >= self.since)
        if self.until is not None:
            out.append(Vote.created_at < self.until)
        return out

    def left_out(self) -> list[str]:
        """The rules in force, in words (for messages such as 'no battle left after ...')."""
        parts = []
        if not self.include_flagged_votes:
            parts.append("flagged votes excluded")
        if not self.include_flagged_annotators:
            parts.append("flagged annotators excluded")
        if not self.include_banned:
            parts.append("banned annotators excluded")
        if not self.include_named:
            parts.append("battles naming a model excluded")
        if self.since:
            parts.append(f"since {self.since.isoformat()}")
        if self.until:
            parts.append(f"until {self.until.isoformat()}")
        return parts


def verdict_of(left, right, tie, both_bad):
    """The verdicts of battles from their counted-vote tallies (numpy arrays or ints), vectorised.

    ``both_bad`` when both-bad votes outnumber left, right and tie each; else ``left``/``right``
    by the plurality of decisive votes; else ``tie``. Ties and both-bad never pick a side.
    """
    import numpy as np

    left, right, tie, bad = (np.asarray(x) for x in (left, right, tie, both_bad))
    all_bad = (bad > left) & (bad > right) & (bad > tie)
    return np.select([all_bad, left > right, right > left], ["both_bad", "left", "right"], "tie").astype(object)


def battle_tallies(session, *, counted: CountedVotes | None = None):
    """Per battle with a counted vote: its tallies, verdict and agreement, as a DataFrame sorted by battle id.

    Columns: battle_id, prompt_id, left_id, right_id (-1 for a deleted side), left, right, tie,
    both_bad (counted-vote tallies), annotators (their sum), verdict, agreement (the share of
    counted votes for the verdict). One statement counts the votes per battle and choice
    (``COUNT(*) FILTER``) and joins the battle, so no vote row reaches Python; the verdict is a
    vectorised rule over the tallies.
    """
    import numpy as np
    import pandas as pd

    counted = counted or CountedVotes()
    no_side = -1  # generation ids are positive
    query = (sa.select(Battle.id, Battle.prompt_id, sa.func.coalesce(Battle.left_generation_id, no_side),
                       sa.func.coalesce(Battle.right_generation_id, no_side),
                       *(sa.func.count().filter(Vote.winner == name) for name in VERDICTS))
             .join(Battle, Battle.id == Vote.battle_id)
             .where(*counted.conditions())
             .group_by(Battle.id)
             .order_by(Battle.id))
    columns = ["battle_id", "prompt_id", "left_id", "right_id", *VERDICTS]
    rows = driver_rows(session, query)
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * len(columns))
    wide = pd.DataFrame(values.reshape(len(rows), len(columns)), columns=columns)
    left, right, tie, bad = (wide[name].to_numpy() for name in VERDICTS)
    verdict = verdict_of(left, right, tie, bad)
    total = left + right + tie + bad
    top = np.select([verdict == "left", verdict == "right", verdict == "both_bad"], [left, right, bad], tie)
    wide["annotators"] = total
    wide["verdict"] = verdict
    wide["agreement"] = np.where(total > 0, top / np.maximum(total, 1), 0.0)
    return wide

