"""Filling the battle pool: pre-generate K complete answers per model and prompt, then form battles.

Which prompts: a file's (``--prompts``), or with ``--all`` every prompt imported for the arena;
a writer's private request (typed in the Write tab, see ``storage.catalog.WRITER_SOURCE``) never.

Resumable: a (prompt, model) pair counts only its *complete* pooled answers, so a rerun
generates what is missing, and failed, truncated or interrupted rows (kept in the database,
never pooled) are retried with a fresh seed. Seeds are derived from the base seed, the prompt,
the model and the attempt number, so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from storage.engine import session_scope
from core.errors import UserError


CPU_FILL_LIMIT = 8
"""Prompts in the fill line printed after ``lwz train --register``: 16 answers for two models,
which the embedded model writes in tens of minutes on a CPU; a GPU server takes the whole pool."""
CPU_TOKENS_PER_SECOND = 25.0
"""The embedded 135M model's speed on a quiet 2-core CPU, one answer at a time (docs/benchmarks.md)."""
TOKENS_PER_WORD = 1.3
UNSET_TARGET_WORDS = 1000
"""Words assumed for a prompt that names no length, in :func:`fill_estimate`."""


@dataclass
class FillOptions:
    """What ``lwz battles fill`` was asked to do; ``__post_init__`` rejects impossible requests."""

    models: list[str]
    per_prompt: int = 1
    concurrency: int = 4
    seed: int = 0
    prompts_file: str | None = None
    all_prompts: bool = False
    target_words: int | None = None
    max_tokens: int | None = None
    limit: int | None = None
    name_words: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if len(set(self.models)) < 2:
            raise UserError("--models needs at least two different registered models, e.g. --models A,B")
        if self.per_prompt < 1:
            raise UserError(f"--per-prompt must be at least 1, got {self.per_prompt}")
        if self.concurrency < 1:
            raise UserError(f"--concurrency must be at least 1, got {self.concurrency}")
        if (self.prompts_file is None) == (not self.all_prompts):
            raise UserError("give either --prompts FILE or --all")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}")


@dataclass(frozen=True)
class Job:
    prompt_id: int
    text: str
    category: str | None
    target_words: int | None
    model: str
    seed: int


def job_seed(base: int, prompt_id: int, model: str, attempt: int) -> int:
    """A reproducible sampling seed for one attempt at one (prompt, model) pair."""
    return random.Random(f"{base}:{prompt_id}:{model}:{attempt}").randrange(2**31)


def plan_jobs(engine: Engine, *, options: FillOptions) -> tuple[list[Job], int]:
    """The generations still needed, in a seeded random order, and how many (prompt, model, k)
    slots were already done."""
    from writing.models import lookup_model
    from storage.catalog import get_or_add_prompt, list_prompts, parse_prompt_lines
    from storage.models import Generation, GenerationStatus

    entries = {name: lookup_model(engine, name=name) for name in options.models}
    with session_scope(engine) as session:
        if options.prompts_file is not None:
            path = Path(options.prompts_file)
            if not path.is_file():
                raise UserError(f"no such file: {path}")
            with path.open(encoding="utf-8") as handle:
                rows = parse_prompt_lines(handle, source=str(path))
            prompts = [get_or_add_prompt(session, source=path.name, **row)[0] for row in rows]
        else:
            prompts = list_prompts(session, arena_only=True)
        if options.limit is not None:
            prompts = prompts[: options.limit]
        if not prompts:
            raise UserError("no arena prompts (requests typed in the Write tab stay private): import some with "
                            "lwz prompts import FILE, or pass --prompts FILE")
        jobs, done = [], 0
        for prompt in prompts:
            for name, entry in entries.items():
                counts = dict(session.execute(
                    sa.select(Generation.status, sa.func.count(Generation.id))
                    .where(Generation.prompt_id == prompt.id, Generation.model_id == entry.id)
                    .group_by(Generation.status)
                ).all())
                pooled = session.execute(
                    sa.select(sa.func.count(Generation.id)).where(
                        Generation.prompt_id == prompt.id, Generation.model_id == entry.id,
                        Generation.status == GenerationStatus.complete, Generation.in_pool.is_(True))
                ).scalar_one()
                attempts = sum(counts.values())
                done += min(pooled, options.per_prompt)
                for k in range(max(0, options.per_prompt - pooled)):
                    jobs.append(Job(prompt.id, prompt.text, prompt.category,
                                    prompt.target_words or options.target_words, name,
                                    job_seed(options.seed, prompt.id, name, attempts + k)))
    # Rows are created in job order: shuffled, so that of a battle's two adjacent ids the lower
    # one is not always the first model named in --models.
    random.Random(f"{options.seed}:order").shuffle(jobs)
    return jobs, done


def fill_estimate(engine: Engine, *, options: FillOptions) -> dict[str, Any]:
    """What a fill would write, before it runs: ``answers``, ``words`` (the prompts' targets) and
    ``cpu_minutes`` at :data:`CPU_TOKENS_PER_SECOND` (the embedded model, one answer at a time)."""
    jobs, _ = plan_jobs(engine, options=options)
    words = sum(job.target_words or UNSET_TARGET_WORDS for job in jobs)
    return {"answers": len(jobs), "words": words,
            "cpu_minutes": round(words * TOKENS_PER_WORD / CPU_TOKENS_PER_SECOND / 60.0)}


async def _run_job(engine: Engine, job: Job, *, options: FillOptions, gate: asyncio.Semaphore) -> str:
    """Generate one answer; pool it when complete. Returns the final status."""
    from contextlib import aclosing

    from generation.events import Started
    from generation.request import GenerationRequest
    from writing.store import generate_and_store
    from storage.generations import get_generation, set_in_pool
    from storage.models import GenerationStatus

    async with gate:
        request = GenerationRequest(prompt=job.text, target_words=job.target_words, seed=job.seed,
                                    max_tokens=options.max_tokens)
        generation_id = None
        async with aclosing(generate_and_store(engine, model=job.model, request=request,
                                               category=job.category)) as events:
            async for event in events:
                if isinstance(event, Started):
                    generation_id = event.generation_id
        with session_scope(engine) as session:
            gen = get_generation(session, generation_id=generation_id)
            if gen.status == GenerationStatus.complete and gen.answer_words > 0:
                set_in_pool(session, generation_id=generation_id)
            return gen.status


async def _run_all(engine: Engine, jobs: list[Job], *, options: FillOptions, progress: bool) -> dict[str, int]:
    from tqdm import tqdm

    gate = asyncio.Semaphore(options.concurrency)
    statuses: dict[str, int] = {}
    bar = tqdm(total=len(jobs), desc="battles fill", unit="answer", disable=not progress)
    tasks = [asyncio.ensure_future(_run_job(engine, job, options=options, gate=gate)) for job in jobs]
    try:
        for finished in asyncio.as_completed(tasks):
            try:
                status = await finished
            except UserError as exc:
                status = "refused"
                bar.write(f"lwz: {exc}", file=sys.stderr)
            statuses[status] = statuses.get(status, 0) + 1
            bar.update(1)
            bar.set_postfix(statuses)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
    return statuses


def no_battle_reason(*, statuses: dict[str, int], max_tokens: int | None) -> str:
    """Why a fill formed no battle, and what to change, from the statuses of what it generated.

    Only complete answers battle (see :func:`storage.arena.pool_entries`): a text cut at its token
    limit, one that ended far short of its target, or a failed one never enters the pool.
    """
    reasons = []
    cut = statuses.get("truncated", 0)
    if cut:
        limit = f"--max-tokens {max_tokens}" if max_tokens else "the model's length limit"
        change = ("raise --max-tokens (a word is about 1.3 tokens, and a plan comes first) or leave it out"
                  if max_tokens else "use prompts with shorter targets, or --target-words for those without one")
        reasons.append(f"{cut} text{'s were' if cut != 1 else ' was'} cut at {limit}, and cut texts cannot "
                       f"battle: {change}")
    short = statuses.get("short", 0)
    if short:
        reasons.append(f"{short} ended far short of the target, and short texts cannot battle: set a smaller "
                       "--target-words or use a model that writes longer")
    for status in sorted(set(statuses) - {"complete", "truncated", "short"}):
        reasons.append(f"{statuses[status]} {status} (see the messages above)")
    if statuses.get("complete") and not reasons:
        reasons.append("the new complete texts found no partner: a battle needs complete texts by two different "
                       "models for the same request")
    if not statuses:
        reasons.append("nothing was left to generate and every pair of pooled texts already has its battle: "
                       "add prompts, or raise --per-prompt")
    return "; ".join(reasons)


def fill_pool(engine: Engine, *, options: FillOptions, progress: bool = True) -> dict[str, Any]:
    """Generate what is missing, then form battles. Returns counts for the summary line / JSON, and
    ``why_no_battles`` (what to change) when none was formed."""
    from storage.arena import list_battles
    from storage.models import Battle
    from arena.pool import form_battles, load_name_words

    words = load_name_words(options.name_words)
    jobs, done = plan_jobs(engine, options=options)
    statuses = asyncio.run(_run_all(engine, jobs, options=options, progress=progress)) if jobs else {}
    with session_scope(engine) as session:
        created = form_battles(session, seed=options.seed, name_words=words)
        named = sum(1 for bid in created if (session.get(Battle, bid).extra or {}).get("names_model"))
        total = len(list_battles(session, limit=10**9))
    complete = statuses.get("complete", 0)
    return {
        "generated": sum(statuses.values()), "complete": complete, "not_complete": sum(statuses.values()) - complete,
        "statuses": statuses, "already_done": done, "battles_formed": len(created), "names_model": named,
        "battles_total": total, "seed": options.seed,
        "why_no_battles": None if created else no_battle_reason(statuses=statuses, max_tokens=options.max_tokens),
    }
