"""Rubric scoring in WritingBench's style: each request carries its own criteria, each scored 1-10 by a judge.

``lwz eval rubric --model M --judge J --prompts FILE``. The prompts file is JSON lines with
``prompt`` (and optional ``type``, ``length``) and optional ``criteria``: a list of objects with
``name``, ``description`` and ``scale`` (the 1-10 rubric; ``rubric`` is accepted as its alias).
A request without criteria uses the ones stored for it, or has the judge write them once
(``prompts/rubric_criteria.md``); they are stored (table ``rubrics``) and reused by later runs.

The model writes one answer per request (kept as a generation). The judge scores each criterion
(``prompts/rubric_score.md``) and ends with ``Score: N``; each score is stored with its
justification (table ``rubric_scores``). Bad input never stops the run: a criterion without a
scale (or name) is left out and reported; a judge reply without a score is stored with a NULL
score and counted as invalid; a request whose criteria the judge could not write is reported.

The per-model mean is the mean over requests of each request's mean score, with a 95% bootstrap
interval over requests (criteria of one request are not independent).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

import numpy as np

from core.errors import UserError

PROMPTS = Path(__file__).with_name("prompts")
_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*(10|[1-9])(?:\s*/\s*10)?\b", re.IGNORECASE)


@dataclass
class RubricSettings:
    """One rubric run; ``seed`` fixes the writer's sampling and the interval's bootstrap."""

    model: str
    judge: str
    prompts: str
    limit: Optional[int] = None
    max_tokens: Optional[int] = None
    judge_max_tokens: int = 256
    criteria_max_tokens: int = 1024
    seed: int = 0
    bootstrap: int = 1000
    concurrency: int = 4

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if self.judge_max_tokens < 1 or self.criteria_max_tokens < 1:
            raise UserError("--judge-max-tokens and --criteria-max-tokens must be at least 1")
        if self.bootstrap < 0:
            raise UserError("--bootstrap must be 0 or more")


def check_criteria(raw: Any) -> tuple[list[dict[str, str]], list[str]]:
    """The valid criteria of one request and a reason for each invalid one."""
    if not isinstance(raw, list):
        return [], [f"criteria must be a list, got {type(raw).__name__}"]
    valid, invalid = [], []
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            invalid.append(f"criterion {number}: not an object")
            continue
        name = item.get("name")
        scale = item.get("scale", item.get("rubric"))
        if isinstance(scale, (dict, list)):
            scale = json.dumps(scale, ensure_ascii=False)
        if not isinstance(name, str) or not name.strip():
            invalid.append(f"criterion {number}: no name")
        elif not isinstance(scale, str) or not scale.strip():
            invalid.append(f"criterion {number} ({name.strip()}): no scale")
        else:
            valid.append({"name": name.strip()[:200], "description": str(item.get("description") or "").strip(),
                          "scale": scale.strip()})
    return valid, invalid


def read_requests(path: str, *, limit: Optional[int]) -> list[dict[str, Any]]:
    """The requests of a prompts file; a line that is not a request is a UserError naming it."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such prompts file: {file}")
    from storage.catalog import parse_prompt_lines

    with file.open(encoding="utf-8") as handle:
        rows = parse_prompt_lines(handle, source=str(file), keep=("criteria",))
    if not rows:
        raise UserError(f"{file}: no prompts")
    return rows[:limit] if limit else rows


def parse_score(text: str) -> Optional[int]:
    """The last ``Score: N`` (1-10) in a judge reply, or None."""
    found = _SCORE.findall(text or "")
    return int(found[-1]) if found else None


def parse_criteria(text: str) -> list[dict[str, str]]:
    """Criteria from the judge's reply (the first JSON array in it), valid ones only; [] if none."""
    start = (text or "").find("[")
    while start != -1:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("[", start + 1)
            continue
        return check_criteria(value)[0]
    return []


def _fill(template: str, values: dict[str, str]) -> str:
    pattern = "|".join(re.escape("{" + k + "}") for k in values)
    return re.sub(pattern, lambda m: values[m.group(0)[1:-1]], template)


def mean_interval(per_request: list[float], *, bootstrap: int, seed: int) -> tuple[Optional[float], Optional[float], Optional[float]]:
    """Mean of the per-request means and its 95% percentile bootstrap interval over requests."""
    if not per_request:
        return None, None, None
    values = np.asarray(per_request, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or bootstrap == 0:
        return mean, None, None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(bootstrap, len(values)))].mean(axis=1)
    return mean, float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


# --- the run ---------------------------------------------------------------------------------

def _stored_rubric(engine, prompt_id: int, criteria: Optional[list[dict[str, str]]], source: str):
    """The prompt's rubric: replaced by ``criteria`` when given (from the file), else the stored one (or None)."""
    import sqlalchemy as sa

    from storage.engine import session_scope
    from storage.models import Rubric

    with session_scope(engine) as session:
        row = session.execute(sa.select(Rubric).where(Rubric.prompt_id == prompt_id)).scalars().first()
        if criteria is not None and (row is None or row.criteria != criteria):
            if row is None:
                row = Rubric(prompt_id=prompt_id)
            row.criteria, row.source = criteria, source
            session.add(row)
            session.flush()
        return None if row is None else (row.id, list(row.criteria))


async def _score_request(engine, settings, request, templates, judge_entry, say) -> dict[str, Any]:
    from evaluation.judge import _collect, _write_answer
    from generation.request import GenerationRequest
    from storage.engine import session_scope
    from storage.models import Generation, RubricScore

    report = {"line": request["line"], "prompt": request["text"], "invalid_criteria": [], "scores": []}
    file_criteria = None
    if request["criteria"] is not None:
        file_criteria, report["invalid_criteria"] = check_criteria(request["criteria"])
    generation_id, answer = await _write_answer(engine, settings.model, request, settings, settings.seed + request["line"])
    report["generation_id"] = generation_id
    with session_scope(engine) as session:
        prompt_id = session.get(Generation, generation_id).prompt_id
    stored = _stored_rubric(engine, prompt_id, file_criteria or None, "file")
    if stored is None:
        text = _fill(templates["criteria"], {"prompt": request["text"]})
        _, reply = await _collect(judge_entry, GenerationRequest(prompt=text, max_tokens=settings.criteria_max_tokens,
                                                                 temperature=0.0, seed=settings.seed))
        generated = parse_criteria(reply)
        if not generated:
            report["error"] = "the judge wrote no usable criteria for this request"
            say(f"line {request['line']}: {report['error']}")
            return report
        stored = _stored_rubric(engine, prompt_id, generated, f"judge:{settings.judge}"[:160])
    rubric_id, criteria = stored

    async def one(criterion):
        text = _fill(templates["score"], {"prompt": request["text"], "answer": answer, **criterion})
        think, reply = await _collect(judge_entry, GenerationRequest(prompt=text, max_tokens=settings.judge_max_tokens,
                                                                     temperature=0.0, seed=settings.seed))
        return criterion["name"], parse_score(reply) or parse_score(think), reply.strip()

    results = await asyncio.gather(*(one(c) for c in criteria))
    with session_scope(engine) as session:
        for name, score, reply in results:
            session.add(RubricScore(rubric_id=rubric_id, generation_id=generation_id, judge=settings.judge,
                                    criterion=name, score=score, justification=reply))
    report["scores"] = [{"criterion": n, "score": s, "justification": r} for n, s, r in results]
    return report


def run_rubric(engine, settings: RubricSettings, *, progress: Optional[TextIO] = None) -> dict[str, Any]:
    """Run the whole rubric job; returns ``{"model", "judge", "requests": [...], "summary": {...}}``."""
    from writing.models import lookup_model

    requests = read_requests(settings.prompts, limit=settings.limit)
    templates = {k: (PROMPTS / f"rubric_{k}.md").read_text(encoding="utf-8") for k in ("score", "criteria")}
    judge_entry = lookup_model(engine, name=settings.judge)
    lookup_model(engine, name=settings.model)

    def say(message: str) -> None:
        if progress is not None:
            progress.write(message + "\n")
            progress.flush()

    async def main():
        gate = asyncio.Semaphore(settings.concurrency)

        async def limited(request):
            async with gate:
                return await _score_request(engine, settings, request, templates, judge_entry, say)

        return await asyncio.gather(*(limited(r) for r in requests))

    say(f"scoring {len(requests)} requests of {settings.model} with {settings.judge}")
    reports = asyncio.run(main())
    per_request = [float(np.mean(v)) for r in reports if (v := [s["score"] for s in r["scores"] if s["score"] is not None])]
    mean, low, high = mean_interval(per_request, bootstrap=settings.bootstrap, seed=settings.seed)
    scores = [s for r in reports for s in r["scores"]]
    summary = {
        "model": settings.model, "judge": settings.judge, "requests": len(reports), "scored_requests": len(per_request),
        "scores": sum(s["score"] is not None for s in scores), "invalid_scores": sum(s["score"] is None for s in scores),
        "invalid_criteria": sum(len(r["invalid_criteria"]) for r in reports),
        "requests_without_criteria": sum("error" in r for r in reports),
        "mean": mean, "ci_low": low, "ci_high": high, "seed": settings.seed,
    }
    return {"model": settings.model, "judge": settings.judge, "requests": reports, "summary": summary}


def rubric_table(engine, *, bootstrap: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Every stored rubric score, per (model, judge): requests, scores, invalid replies, mean and 95% interval."""
    import sqlalchemy as sa

    from storage.engine import session_scope
    from storage.models import Generation, ModelEntry, RubricScore

    with session_scope(engine) as session:
        rows = session.execute(
            sa.select(ModelEntry.name, RubricScore.judge, Generation.prompt_id, RubricScore.score)
            .join(Generation, Generation.id == RubricScore.generation_id)
            .join(ModelEntry, ModelEntry.id == Generation.model_id)
        ).all()
    groups: dict[tuple[str, str], dict[int, list]] = {}
    for model, judge, prompt_id, score in rows:
        groups.setdefault((model, judge), {}).setdefault(prompt_id, []).append(score)
    out = []
    for (model, judge), by_prompt in sorted(groups.items()):
        valid = {p: [s for s in v if s is not None] for p, v in by_prompt.items()}
        per_request = [float(np.mean(v)) for v in valid.values() if v]
        mean, low, high = mean_interval(per_request, bootstrap=bootstrap, seed=seed)
        out.append({"model": model, "judge": judge, "requests": len(by_prompt),
                    "scores": sum(len(v) for v in valid.values()),
                    "invalid": sum(len(v) for v in by_prompt.values()) - sum(len(v) for v in valid.values()),
                    "mean": None if mean is None else round(mean, 3), "ci_low": None if low is None else round(low, 3),
                    "ci_high": None if high is None else round(high, 3)})
    return sorted(out, key=lambda r: -(r["mean"] or 0.0))
