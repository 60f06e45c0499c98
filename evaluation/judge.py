"""LLM-as-judge pairwise runs, in the style of Arena-Write: a candidate against baselines.

For each prompt, every model writes one answer (through ``writing.store.generate_and_store``,
so the answers are kept as generations rows). Then for each baseline the judge model sees the
candidate's and the baseline's answers twice, once in each order, and ends its reply with
``[[1]]``, ``[[2]]`` or ``[[tie]]``. A reply without a verdict is counted as invalid and left out.
The verdicts become a battles table, rated with :func:`evaluation.ratings.compute_ratings`.

With a prompts file in Arena-Write's layout (:mod:`evaluation.arena_write`), the baseline's
answers are the file's ``baseline_response`` fields, rated as one model (``baseline_name``)
anchored at 1000; only the candidate writes.

The judge prompt is a file the user can replace (``--judge-prompt``); it must contain the
placeholders ``{prompt}``, ``{answer_1}`` and ``{answer_2}``. Any registered model can judge; its
own template applies (a think-template judge plans first, and its verdict is read from the answer).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, TextIO

from core.errors import UserError

DEFAULT_JUDGE_PROMPT = Path(__file__).with_name("prompts") / "judge.md"
PLACEHOLDERS = ("{prompt}", "{answer_1}", "{answer_2}")
_VERDICT = re.compile(r"\[\[\s*(1|2|tie)\s*\]\]", re.IGNORECASE)


@dataclass
class JudgeSettings:
    """One judge run. ``baselines`` must not include the candidate; ``seed`` fixes sampling seeds."""

    candidate: str
    baselines: list[str]
    judge: str
    prompts: str
    judge_prompt: Optional[str] = None
    limit: Optional[int] = None
    max_tokens: Optional[int] = None
    judge_max_tokens: int = 256
    seed: int = 0
    bootstrap: int = 100
    out: Optional[str] = None
    concurrency: int = 4
    arena_write: bool = False
    min_battles: int = 10

    def __post_init__(self) -> None:
        if self.arena_write and len(self.baselines) != 1:
            raise UserError("an Arena-Write file carries its one baseline: name it with --baseline-name, not --baselines")
        if not self.baselines:
            raise UserError("--baselines needs at least one registered model")
        if self.candidate in self.baselines:
            raise UserError(f"the candidate {self.candidate!r} cannot also be a baseline")
        if len(set(self.baselines)) != len(self.baselines):
            raise UserError("--baselines lists a model twice")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if self.judge_max_tokens < 1:
            raise UserError("--judge-max-tokens must be at least 1")


def load_judge_prompt(path: Optional[str]) -> str:
    """The judge prompt template; UserError if the file is missing or lacks a placeholder."""
    file = Path(path) if path else DEFAULT_JUDGE_PROMPT
    if not file.is_file():
        raise UserError(f"no such judge prompt file: {file}")
    text = file.read_text(encoding="utf-8")
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise UserError(f"{file}: the judge prompt lacks the placeholder(s) {', '.join(missing)}")
    return text


def render_judge_prompt(template: str, *, prompt: str, answer_1: str, answer_2: str) -> str:
    """Fill the placeholders (plain replacement, so braces in the texts are harmless)."""
    values = {"{prompt}": prompt, "{answer_1}": answer_1, "{answer_2}": answer_2}
    return re.sub(r"\{prompt\}|\{answer_1\}|\{answer_2\}", lambda m: values[m.group(0)], template)


def parse_verdict(text: str) -> Optional[str]:
    """``"1"``, ``"2"`` or ``"tie"`` from the judge's reply (its last ``[[...]]`` mark), or None."""
    found = _VERDICT.findall(text or "")
    return found[-1].lower() if found else None


def load_prompts(path: str, *, limit: Optional[int]) -> list[dict[str, Any]]:
    from storage.catalog import parse_prompt_lines

    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such prompts file: {file}")
    with file.open(encoding="utf-8") as handle:
        rows = parse_prompt_lines(handle, source=str(file))
    if not rows:
        raise UserError(f"{file}: no prompts")
    return rows[:limit] if limit else rows


@dataclass
class JudgeReport:
    """Verdicts (one dict per judged order) and the ratings computed from them."""

    settings: JudgeSettings
    verdicts: list[dict[str, Any]]
    ratings: Any
    generation_ids: dict[str, list[int]] = field(default_factory=dict)

    def win_rates(self) -> list[dict[str, Any]]:
        """Per baseline: the candidate's wins, losses, ties, invalid verdicts, win rate (a tie = 1/2)
        and how often the two orders of one prompt agreed (position consistency)."""
        out = []
        cand = self.settings.candidate
        for base in self.settings.baselines:
            rows = [v for v in self.verdicts if v["baseline"] == base]
            valid = [v for v in rows if v["winner"] is not None]
            wins = sum(v["winner"] == cand for v in valid)
            losses = sum(v["winner"] == base for v in valid)
            ties = sum(v["winner"] == "tie" for v in valid)
            pairs: dict[int, list[Optional[str]]] = {}
            for v in rows:
                pairs.setdefault(v["prompt_index"], []).append(v["winner"])
            both = [p for p in pairs.values() if len(p) == 2 and None not in p]
            out.append({
                "baseline": base, "battles": len(rows), "candidate_wins": wins, "baseline_wins": losses, "ties": ties,
                "invalid": len(rows) - len(valid),
                "win_rate": round((wins + 0.5 * ties) / len(valid), 4) if valid else None,
                "order_consistency": round(sum(p[0] == p[1] for p in both) / len(both), 4) if both else None,
            })
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "candidate": self.settings.candidate, "baselines": self.settings.baselines, "judge": self.settings.judge,
            "seed": self.settings.seed, "win_rates": self.win_rates(), "ratings": self.ratings.records(),
            "format": "arena-write" if self.settings.arena_write else "prompts",
            "warnings": list(self.ratings.warnings), "verdicts": len(self.verdicts),
            "out": self.settings.out, "generation_ids": self.generation_ids,
        }


def battles_from_verdicts(verdicts: list[dict[str, Any]]):
    """The valid verdicts as a battles table (``model_a`` = the model shown first)."""
    import pandas as pd

    rows = [
        {"model_a": v["first"], "model_b": v["second"],
         "winner": {"1": "model_a", "2": "model_b", "tie": "tie"}[v["verdict"]]}
        for v in verdicts if v["verdict"] is not None
    ]
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner"])


async def _collect(entry, request) -> tuple[str, str]:
    """Think and answer text of one stream; UserError on a backend failure."""
    from generation.service import collect_text

    return await collect_text(entry, request, failure=f"model {entry.name!r} failed")


async def _write_answer(engine, model: str, prompt: dict[str, Any], settings: JudgeSettings, seed: int) -> tuple[int, str]:
    from contextlib import aclosing

    from generation.events import Answer, Error, Started
    from generation.request import GenerationRequest
    from writing.store import generate_and_store

    request = GenerationRequest(prompt=prompt["text"], target_words=prompt.get("target_words"),
                                max_tokens=settings.max_tokens, seed=seed)
    generation_id, answer = None, []
    async with aclosing(generate_and_store(engine, model=model, request=request, category=prompt.get("category"))) as events:
        async for event in events:
            if isinstance(event, Started):
                generation_id = event.generation_id
            elif isinstance(event, Answer):
                answer.append(event.text)
            elif isinstance(event, Error):
                raise UserError(f"model {model!r} failed to write: {event.message}")
    return generation_id, "".join(answer).strip()


async def _run(engine, settings: JudgeSettings, template: str, prompts, progress: Optional[TextIO]):
    from writing.models import lookup_model
    from generation.request import GenerationRequest

    models = [settings.candidate] + ([] if settings.arena_write else settings.baselines)
    judge_entry = lookup_model(engine, name=settings.judge)
    for name in models:
        lookup_model(engine, name=name)
    gate = asyncio.Semaphore(settings.concurrency)

    async def limited(coro):
        async with gate:
            return await coro

    def say(message: str) -> None:
        if progress is not None:
            progress.write(message + "\n")
            progress.flush()

    say(f"writing {len(prompts)} prompts x {len(models)} models")
    jobs = [(m, i) for i, _ in enumerate(prompts) for m in models]
    written = await asyncio.gather(*(
        limited(_write_answer(engine, m, prompts[i], settings, settings.seed + i)) for m, i in jobs
    ))
    answers = {job: text for job, (_, text) in zip(jobs, written)}
    if settings.arena_write:
        answers.update({(settings.baselines[0], i): prompt["baseline"] for i, prompt in enumerate(prompts)})
    generation_ids: dict[str, list[int]] = {m: [] for m in models}
    for (m, _), (gid, _) in zip(jobs, written):
        generation_ids[m].append(gid)

    orders = []
    for i, prompt in enumerate(prompts):
        for base in settings.baselines:
            orders.append((i, base, settings.candidate, base))
            orders.append((i, base, base, settings.candidate))
    say(f"judging {len(orders)} ordered pairs with {settings.judge}")

    async def judge_one(i, base, first, second):
        text = render_judge_prompt(template, prompt=prompts[i]["text"], answer_1=answers[(first, i)],
                                   answer_2=answers[(second, i)])
        request = GenerationRequest(prompt=text, max_tokens=settings.judge_max_tokens, temperature=0.0,
                                    seed=settings.seed)
        think, reply = await _collect(judge_entry, request)
        verdict = parse_verdict(reply) or parse_verdict(think)
        winner = {"1": first, "2": second, "tie": "tie"}.get(verdict) if verdict else None
        return {"prompt_index": i, "baseline": base, "first": first, "second": second, "verdict": verdict,
                "winner": winner, "reply": reply, "think": think}

    verdicts = await asyncio.gather(*(limited(judge_one(*o)) for o in orders))
    return list(verdicts), generation_ids


def run_judge(engine, settings: JudgeSettings, *, progress: Optional[TextIO] = None) -> JudgeReport:
    """Run the whole judge job (see the module docstring) and return its report; writes ``settings.out``."""
    from evaluation.ratings import compute_ratings

    template = load_judge_prompt(settings.judge_prompt)
    if settings.arena_write:
        from evaluation.arena_write import read_arena_write

        prompts = read_arena_write(settings.prompts, limit=settings.limit)
    else:
        prompts = load_prompts(settings.prompts, limit=settings.limit)
    verdicts, generation_ids = asyncio.run(_run(engine, settings, template, prompts, progress))
    battles = battles_from_verdicts(verdicts)
    anchor = settings.baselines[0] if settings.arena_write and len(battles) else None
    ratings = compute_ratings(
        battles, bootstrap=settings.bootstrap, seed=settings.seed, anchor=anchor,
        models=[settings.candidate] + settings.baselines, min_battles=settings.min_battles,
    )
    if settings.out:
        with Path(settings.out).open("w", encoding="utf-8") as handle:
            for v in verdicts:
                extra = {"idx": prompts[v["prompt_index"]]["idx"]} if settings.arena_write else {}
                handle.write(json.dumps({**v, **extra, "prompt": prompts[v["prompt_index"]]["text"],
                                         "judge": settings.judge}, ensure_ascii=False) + "\n")
    return JudgeReport(settings=settings, verdicts=verdicts, ratings=ratings, generation_ids=generation_ids)
