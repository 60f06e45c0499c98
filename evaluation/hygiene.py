"""Vote hygiene: per-annotator checks for rigged or careless voting, flags, and reversible bans.

LMArena's vote-rigging study showed that a few hundred targeted votes move a ranking. The checks
here, per annotator, each with a z score so that "beyond chance" has one meaning:

* **skew**: for each model, the annotator's decisive votes for it against what the *other*
  annotators' votes on the same pair of models predict (their win rate, with one pseudo-win
  and one pseudo-loss); ``skew_z`` is the largest |z| over models, signed, ``skew_model`` its model;
* **side bias**: left against right among decisive votes (z against 50/50);
* **too fast**: the share of votes the arena flagged ``too_fast``;
* **instant voting**: the share of votes cast sooner than the arena's server-side floor
  (``under_floor``, see :func:`arena.rules.floor_seconds`): over half means the median vote came
  before the texts could be opened and skimmed, whatever the page reported about reading;
* **one address, several accounts**: annotators whose sign-ins came from an address another
  voting account also signed in from (``storage.votes.voters_sharing_an_address``). A household
  or an office behind one NAT shares an address honestly, so this is a prompt to look, not a verdict;
* **agreement with the majority** (see :func:`evaluation.agreement.annotator_stats`), with a z
  against the agreement rate of all annotators together.

An annotator is flagged when a z passes ``HygieneSettings.z`` (skew: Bonferroni-corrected over
the models they judged) or the too-fast or instant share passes its limit, each only with enough
votes, or when another voting account signed in from one of their addresses.
Bans (:func:`ban`, :func:`unban`) are rows of ``annotator_bans``; ``storage.votes`` leaves banned
annotators' votes out of the battles table that ratings and exports read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from core.errors import UserError


@dataclass(frozen=True)
class HygieneSettings:
    """Thresholds of the flags. ``z``: two-sided z for "beyond chance" (3.29: p < 0.001);
    ``min_votes``: decisive votes (or compared battles) needed before a z may flag;
    ``too_fast_share``: flag above this share of too-fast votes (with ``min_votes`` votes);
    ``instant_share``: flag "votes instantly" above this share of votes under the server's floor
    (0.5: the median vote; with ``min_votes`` votes)."""

    z: float = 3.29
    min_votes: int = 10
    too_fast_share: float = 0.3
    instant_share: float = 0.5

    def __post_init__(self) -> None:
        if (self.z <= 0 or self.min_votes < 1 or not 0 < self.too_fast_share <= 1
                or not 0 <= self.instant_share < 1):
            raise UserError("hygiene thresholds: z > 0, min_votes >= 1, 0 < too_fast_share <= 1 "
                            "and 0 <= instant_share < 1")


def _z(observed: float, expected: float, variance: float) -> float | None:
    return None if variance <= 0 else (observed - expected) / math.sqrt(variance)


def skew_scores(votes) -> dict[str, dict[str, Any]]:
    """Per annotator: ``skew_model``, ``skew_z`` (signed; None without decisive votes) and ``models_judged``.

    Expected wins come from the other annotators' decisive votes on the same (unordered) pair.
    """
    decisive = votes[votes["winner"].isin(["model_a", "model_b"])]
    if decisive.empty:
        return {}
    first = np.where(decisive["model_a"] < decisive["model_b"], decisive["model_a"], decisive["model_b"])
    second = np.where(decisive["model_a"] < decisive["model_b"], decisive["model_b"], decisive["model_a"])
    winner = np.where(decisive["winner"] == "model_a", decisive["model_a"], decisive["model_b"])
    import pandas as pd

    frame = pd.DataFrame({"annotator": decisive["annotator"].astype(str).to_numpy(), "first": first,
                          "second": second, "first_won": (winner == first).astype(float)})
    pair_total = frame.groupby(["first", "second"])["first_won"].agg(["sum", "count"])
    own = frame.groupby(["annotator", "first", "second"])["first_won"].agg(["sum", "count"]).reset_index()
    own = own.merge(pair_total.add_suffix("_all"), left_on=["first", "second"], right_index=True, how="left")
    own["p"] = (own["sum_all"] - own["sum"] + 1.0) / (own["count_all"] - own["count"] + 2.0)
    out: dict[str, dict[str, Any]] = {}
    for annotator, rows in own.groupby("annotator"):
        stats: dict[str, list[float]] = {}
        for r in rows.itertuples():
            for model, wins, p in ((r.first, r.sum, r.p), (r.second, r.count - r.sum, 1.0 - r.p)):
                s = stats.setdefault(model, [0.0, 0.0, 0.0])
                s[0] += wins
                s[1] += r.count * p
                s[2] += r.count * p * (1.0 - p)
        scored = {m: _z(*s) for m, s in stats.items()}
        scored = {m: z for m, z in scored.items() if z is not None}
        best = max(scored, key=lambda m: abs(scored[m]), default=None)
        out[str(annotator)] = {"skew_model": best, "skew_z": None if best is None else round(scored[best], 3),
                               "models_judged": len(stats)}
    return out


def hygiene_report(votes, *, flags_by_vote: dict[int, list[str]] | None = None,
                   banned: set[str] | None = None, settings: HygieneSettings | None = None,
                   shared_address: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """One row per annotator: the agreement habits plus skew, side bias, too-fast and instant
    shares, the accounts sharing an address with them, flags and ban.

    ``votes`` is a votes table (``storage.votes.votes_table``: battle_id, annotator, model_a,
    model_b, winner, vote_id, reading_seconds); ``flags_by_vote`` maps vote ids to their stored
    flags; ``shared_address`` maps an annotator to the other voting accounts that signed in from
    one of their addresses.
    """
    from evaluation.agreement import annotator_stats

    settings = settings or HygieneSettings()
    flags_by_vote = flags_by_vote or {}
    banned = banned or set()
    shared_address = shared_address or {}
    base = annotator_stats(votes) if len(votes) else []
    skew = skew_scores(votes) if len(votes) else {}
    compared = [r for r in base if r["majority_battles"]]
    agree_all = (sum(r["agreement_with_majority"] * r["majority_battles"] for r in compared)
                 / sum(r["majority_battles"] for r in compared)) if compared else None
    rows = []
    for row in base:
        name = row["annotator"]
        mine = votes[votes["annotator"].astype(str) == name]
        winners = mine["winner"].astype(str)
        left, right = int((winners == "model_a").sum()), int((winners == "model_b").sum())
        stored = [flags_by_vote.get(int(v), []) for v in mine["vote_id"]] if "vote_id" in mine else []
        too_fast = sum("too_fast" in f for f in stored)
        instant = sum("under_floor" in f for f in stored)
        side_z = _z(left, (left + right) / 2, (left + right) / 4)
        n_major = row["majority_battles"]
        agree_z = None
        if n_major and agree_all is not None:
            agree_z = _z(row["agreement_with_majority"] * n_major, agree_all * n_major, n_major * agree_all * (1 - agree_all))
        s = skew.get(name, {"skew_model": None, "skew_z": None, "models_judged": 0})
        out = {**row, **s, "side_z": None if side_z is None else round(side_z, 3),
               "agreement_z": None if agree_z is None else round(agree_z, 3),
               "too_fast_share": too_fast / len(mine) if len(mine) else None,
               "instant_share": instant / len(mine) if len(mine) else None,
               "shares_address_with": sorted(shared_address.get(name, [])), "banned": name in banned}
        out["flags"] = _flags(out, decisive=left + right, settings=settings)
        rows.append(out)
    return rows


def _flags(row: dict[str, Any], *, decisive: int, settings: HygieneSettings) -> list[str]:
    flags = []
    if decisive >= settings.min_votes and row["skew_z"] is not None:
        # Bonferroni over the models judged: the largest of k z scores is compared at p / k.
        limit = NormalDist().inv_cdf(1 - (1 - NormalDist().cdf(settings.z)) / max(1, row["models_judged"]))
        if abs(row["skew_z"]) > limit:
            flags.append(f"{'favours' if row['skew_z'] > 0 else 'disfavours'} {row['skew_model']}")
    if decisive >= settings.min_votes and row["side_z"] is not None and abs(row["side_z"]) > settings.z:
        flags.append(f"side bias ({'left' if row['side_z'] > 0 else 'right'})")
    if row["votes"] >= settings.min_votes and (row["too_fast_share"] or 0) > settings.too_fast_share:
        flags.append("too fast")
    if row["votes"] >= settings.min_votes and (row.get("instant_share") or 0) > settings.instant_share:
        flags.append("votes instantly (median vote before the server's reading floor)")
    if row.get("shares_address_with"):
        flags.append(f"signs in from one address with {', '.join(row['shares_address_with'])}")
    if row["majority_battles"] >= settings.min_votes and row["agreement_z"] is not None and row["agreement_z"] < -settings.z:
        flags.append("disagrees with the majority")
    return flags


# --- bans -------------------------------------------------------------------------------------

def _user(session, name: str, *, what: str = "annotator"):
    from storage.users import get_user

    user = get_user(session, name=name)
    if user is None:
        raise UserError(f"no such {what}: {name!r}")
    return user


def _active_ban(session, user_id: int):
    import sqlalchemy as sa

    from storage.models import AnnotatorBan

    return session.execute(sa.select(AnnotatorBan).where(
        AnnotatorBan.user_id == user_id, AnnotatorBan.lifted_at.is_(None))).scalars().first()


def ban(session, *, name: str, reason: str = "", by: str | None = None) -> dict[str, Any]:
    """Ban annotator ``name`` (their votes leave ratings and exports). UserError if unknown or already banned."""
    from storage.models import AnnotatorBan

    user = _user(session, name)
    admin = _user(session, by, what="user") if by else None
    if admin is not None and admin.role != "admin":
        raise UserError(f"{by!r} is a {admin.role}: only an admin may ban")
    if _active_ban(session, user.id) is not None:
        raise UserError(f"{name!r} is already banned")
    row = AnnotatorBan(user_id=user.id, reason=reason.strip(), banned_by_id=admin.id if admin else None)
    session.add(row)
    session.flush()
    return {"annotator": name, "ban_id": row.id, "reason": row.reason, "by": by}


def unban(session, *, name: str, by: str | None = None) -> dict[str, Any]:
    """Lift ``name``'s active ban (the record stays). UserError if unknown or not banned."""
    from storage.models import utcnow

    user = _user(session, name)
    admin = _user(session, by, what="user") if by else None
    if admin is not None and admin.role != "admin":
        raise UserError(f"{by!r} is a {admin.role}: only an admin may lift a ban")
    row = _active_ban(session, user.id)
    if row is None:
        raise UserError(f"{name!r} is not banned")
    row.lifted_at = utcnow()
    row.lifted_by_id = admin.id if admin else None
    session.add(row)
    session.flush()
    return {"annotator": name, "ban_id": row.id, "lifted": True, "by": by}


def ban_history(session) -> list[dict[str, Any]]:
    """Every ban, newest first: who, why, by whom, when, and when (and by whom) it was lifted."""
    import sqlalchemy as sa
    from sqlalchemy.orm import aliased

    from storage.models import AnnotatorBan, User

    banned, by, lifter = aliased(User), aliased(User), aliased(User)
    rows = session.execute(
        sa.select(AnnotatorBan.id, banned.name, AnnotatorBan.reason, by.name, AnnotatorBan.created_at,
                  AnnotatorBan.lifted_at, lifter.name)
        .join(banned, banned.id == AnnotatorBan.user_id)
        .outerjoin(by, by.id == AnnotatorBan.banned_by_id)
        .outerjoin(lifter, lifter.id == AnnotatorBan.lifted_by_id)
        .order_by(AnnotatorBan.id.desc())
    ).all()
    return [{"ban_id": r[0], "annotator": r[1], "reason": r[2], "by": r[3], "banned_at": r[4].isoformat(),
             "lifted_at": r[5].isoformat() if r[5] else None, "lifted_by": r[6]} for r in rows]
