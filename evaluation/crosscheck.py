"""Agreement per checkpoint: do the human votes, an LLM judge and a trained reward model pick the same side?

Before GRPO leans on a reward model, a researcher needs to know whether it may stand in for the
annotators. For every registered model (every checkpoint), over the stored battles it fought,
this reports how often each pair of signals agrees, with a 95% Wilson interval:

* **humans**: the verdict of the battle's counted votes, as :mod:`storage.counted_votes` decides
  both for every reader of the votes (``both_bad`` picks no side, so it counts as a tie);
* **judge:NAME**: an LLM judge on the stored texts, in both orders (the verdict both orders agree
  on; a position-inconsistent pair is a tie; one valid order stands alone);
* **rm:NAME**: a reward model trained by ``lwz train reward``, passed in as a scoring function
  scoring both answers; the higher score wins.

Verdicts of judges and reward models are stored in ``judge_verdicts`` (a reward model under the
name ``rm:FOLDER``, its two scores in ``reply``), so a rerun only fills in the missing ones and the
Leaderboard tab can show the table without running a model. Agreement counts the battles where
both signals are decisive (a tie has no side to agree on); how many such battles there are is
reported beside it.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Callable, Optional, TextIO

import sqlalchemy as sa

from evaluation.ratings import Z95

HUMANS = "humans"


def wilson(agree: int, n: int) -> tuple[Optional[float], Optional[float]]:
    """95% Wilson score interval of a proportion; (None, None) when ``n`` is 0."""
    if n == 0:
        return None, None
    p, z2 = agree / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def human_verdicts(session) -> dict[int, str]:
    """Per battle with a counted vote, its verdict (:func:`storage.counted_votes.battle_tallies`) as
    ``left``, ``right`` or ``tie`` (``both_bad`` picks no side either, so it is a tie here)."""
    from storage.counted_votes import battle_tallies

    tallies = battle_tallies(session)
    verdicts = tallies["verdict"].replace("both_bad", "tie")
    return dict(zip(map(int, tallies["battle_id"]), map(str, verdicts)))


def stored_verdicts(session) -> dict[str, dict[int, str]]:
    """Per judge (or ``rm:...``), per battle, the combined verdict of its stored orders (see the module docstring)."""
    from storage.models import JudgeVerdict

    rows = session.execute(sa.select(JudgeVerdict.judge, JudgeVerdict.battle_id, JudgeVerdict.verdict)).all()
    orders: dict[tuple[str, int], list[str]] = {}
    out: dict[str, dict[int, str]] = {judge: {} for judge, _, _ in rows}  # a judge with no valid verdict still shows
    for judge, battle_id, verdict in rows:
        if verdict is not None:
            orders.setdefault((judge, int(battle_id)), []).append(verdict)
    for (judge, battle_id), verdicts in orders.items():
        out.setdefault(judge, {})[battle_id] = verdicts[0] if len(set(verdicts)) == 1 else "tie"
    return out


def battle_models(session, battle_ids) -> dict[int, tuple[str, str]]:
    """``(left model, right model)`` of each battle."""
    from sqlalchemy.orm import aliased

    from storage.models import Battle, Generation, ModelEntry

    lg, rg, lm, rm = aliased(Generation), aliased(Generation), aliased(ModelEntry), aliased(ModelEntry)
    rows = session.execute(
        sa.select(Battle.id, lm.name, rm.name)
        .join(lg, lg.id == Battle.left_generation_id).join(rg, rg.id == Battle.right_generation_id)
        .join(lm, lm.id == lg.model_id).join(rm, rm.id == rg.model_id)
        .where(Battle.id.in_(list(battle_ids)))
    ).all()
    return {int(r[0]): (r[1], r[2]) for r in rows}


def agreement_rows(signals: dict[str, dict[int, str]], models_of: dict[int, tuple[str, str]],
                   models: list[str]) -> list[dict[str, Any]]:
    """For each model (and ``(all)``) and each pair of signals: decisive battles, agreement and its interval."""
    names = sorted(signals, key=lambda s: (s != HUMANS, s))
    out = []
    for model in ["(all)"] + models:
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                shared = [b for b in signals[first].keys() & signals[second].keys()
                          if (model == "(all)" or model in models_of.get(b, ()))
                          and signals[first][b] != "tie" and signals[second][b] != "tie"]
                if not shared and model != "(all)":
                    continue
                agree = sum(signals[first][b] == signals[second][b] for b in shared)
                low, high = wilson(agree, len(shared))
                out.append({"model": model, "pair": f"{first} ~ {second}", "battles": len(shared),
                            "agreement": round(agree / len(shared), 4) if shared else None,
                            "ci_low": None if low is None else round(low, 4),
                            "ci_high": None if high is None else round(high, 4)})
    return out


def agreement_from_db(engine) -> list[dict[str, Any]]:
    """:func:`agreement_rows` over the stored votes and verdicts, for every registered model."""
    from evaluation.leaderboard import registered_models
    from storage.engine import session_scope

    with session_scope(engine) as session:
        stored = stored_verdicts(session)
        if not stored:  # nothing to compare the votes with (and no need to read them)
            return []
        signals = {HUMANS: human_verdicts(session), **stored}
        battle_ids = set().union(*(s.keys() for s in signals.values()))
        models_of = battle_models(session, battle_ids) if battle_ids else {}
        models = registered_models(session)
    return agreement_rows(signals, models_of, models)


# --- filling in verdicts -------------------------------------------------------------------

def _battles_to_judge(engine, judge: str, limit: Optional[int]) -> list[dict[str, Any]]:
    """Voted battles lacking an order by ``judge``, with their request and both answers."""
    from storage.engine import session_scope
    from storage.models import Battle, Generation, JudgeVerdict, Prompt

    with session_scope(engine) as session:
        voted = sorted(human_verdicts(session))
        done = {(int(b), bool(o)) for b, o in session.execute(
            sa.select(JudgeVerdict.battle_id, JudgeVerdict.left_first).where(JudgeVerdict.judge == judge)).all()}
        todo = []
        for battle_id in voted[:limit] if limit else voted:
            battle = session.get(Battle, battle_id)
            left = session.get(Generation, battle.left_generation_id) if battle.left_generation_id else None
            right = session.get(Generation, battle.right_generation_id) if battle.right_generation_id else None
            if left is None or right is None:
                continue
            orders = [o for o in (True, False) if (battle_id, o) not in done]
            if orders:
                todo.append({"battle_id": battle_id, "prompt": session.get(Prompt, battle.prompt_id).text,
                             "left": left.answer, "right": right.answer, "orders": orders})
    return todo


def _store(engine, rows: list[dict[str, Any]]) -> None:
    from storage.engine import session_scope
    from storage.models import JudgeVerdict

    with session_scope(engine) as session:
        for row in rows:
            session.add(JudgeVerdict(**row))


def judge_battles(engine, *, judge: str, max_tokens: int = 256, seed: int = 0, limit: Optional[int] = None,
                  judge_prompt: Optional[str] = None, concurrency: int = 4, progress: Optional[TextIO] = None) -> int:
    """Ask ``judge`` (a registered model) about every voted battle it has not judged, both orders; store the verdicts."""
    from evaluation.judge import _collect, load_judge_prompt, parse_verdict, render_judge_prompt
    from writing.models import lookup_model
    from generation.request import GenerationRequest

    entry = lookup_model(engine, name=judge)
    template = load_judge_prompt(judge_prompt)
    todo = _battles_to_judge(engine, judge, limit)
    if progress is not None:
        progress.write(f"judging {sum(len(t['orders']) for t in todo)} battle orders with {judge}\n")

    async def one(item, left_first, gate):
        first, second = (item["left"], item["right"]) if left_first else (item["right"], item["left"])
        text = render_judge_prompt(template, prompt=item["prompt"], answer_1=first, answer_2=second)
        async with gate:
            think, reply = await _collect(entry, GenerationRequest(prompt=text, max_tokens=max_tokens,
                                                                   temperature=0.0, seed=seed))
        verdict = parse_verdict(reply) or parse_verdict(think)
        sides = {"1": "left" if left_first else "right", "2": "right" if left_first else "left", "tie": "tie"}
        return {"battle_id": item["battle_id"], "judge": judge, "left_first": left_first,
                "verdict": sides.get(verdict) if verdict else None, "reply": reply.strip()}

    async def run():
        gate = asyncio.Semaphore(concurrency)
        return await asyncio.gather(*(one(item, o, gate) for item in todo for o in item["orders"]))

    rows = asyncio.run(run()) if todo else []
    _store(engine, rows)
    return len(rows)


def score_battles(engine, *, name: str, score: Callable[..., list[Optional[float]]], limit: Optional[int] = None,
                  progress: Optional[TextIO] = None) -> int:
    """Score both answers of every voted battle with ``score`` and store the verdicts under ``name``.

    ``score(completions, prompts=...)`` is a reward function in TRL's shape (the command line passes
    a trained reward model, ``training.rewards.QualityReward``); evaluation does not import training.
    """
    todo = [t for t in _battles_to_judge(engine, name, limit) if True in t["orders"]]
    if not todo:
        return 0
    if progress is not None:
        progress.write(f"scoring {len(todo)} battles with {name}\n")
    scores = score([s for t in todo for s in (t["left"], t["right"])],
                    prompts=[t["prompt"] for t in todo for _ in (0, 1)])
    rows = []
    for i, item in enumerate(todo):
        left, right = scores[2 * i], scores[2 * i + 1]
        verdict = None if left is None or right is None else ("left" if left > right else "right" if right > left else "tie")
        rows.append({"battle_id": item["battle_id"], "judge": name, "left_first": True, "verdict": verdict,
                     "reply": json.dumps({"left": left, "right": right})})
    _store(engine, rows)
    return len(rows)
