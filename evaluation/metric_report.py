"""Automatic metrics over many texts: a file of outputs or the database's generations.

A file row has either ``text`` (the full output, tags included) or ``think`` and ``answer`` (an
empty ``think`` counts as no plan, so the format is invalid);
optionally ``prompt``, a target (``target``, ``target_words`` or ``length``), ``model`` and ``id``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from core.errors import UserError
from generation.parser import tagged

METRIC_KEYS = ("length_score", "format_valid", "distinct_2", "longest_repeat", "near_duplicate_share", "keyword_stuffing")


def split_output(text: str) -> tuple[str, str]:
    """``(think, answer)`` of a full output: the tagged parts if present, else ("", the whole text)."""
    import re

    from generation.parser import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN

    think = re.search(f"{re.escape(THINK_OPEN)}(.*?){re.escape(THINK_CLOSE)}", text, flags=re.S)
    answer = re.search(f"{re.escape(ANSWER_OPEN)}(.*?)(?:{re.escape(ANSWER_CLOSE)}|$)", text, flags=re.S)
    return (think.group(1) if think else "", answer.group(1) if answer else (text if not think else text[think.end():]))


def text_metrics(
    *, full_text: str, answer: str, prompt: str | None = None, target: int | None = None, embed: bool = True
) -> dict[str, Any]:
    """Every metric of one output. ``full_text`` (with tags) is what format validity is judged on."""
    from evaluation.metrics import (
        distinct_n, format_valid, keyword_stuffing, length_score, longest_repeated_ngram, near_duplicate_share, paragraphs_of,
    )
    from generation.counting import count_words

    words = count_words(answer)
    return {
        "words": words,
        "target": target,
        "length_score": round(length_score(words, target), 2) if target else None,
        "format_valid": format_valid(full_text),
        "distinct_2": round(distinct_n(answer, 2), 4),
        "longest_repeat": longest_repeated_ngram(answer),
        "near_duplicate_share": round(near_duplicate_share(paragraphs_of(answer)), 4) if embed else None,
        "keyword_stuffing": round(keyword_stuffing(prompt, answer), 3) if prompt else None,
    }


def _target(row: dict[str, Any]) -> int | None:
    for key in ("target", "target_words", "length"):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise UserError(f"{key} must be a whole number of words, got {value!r}") from None
            if value <= 0:
                raise UserError(f"{key} must be positive, got {value}")
            return value
    return None


def _text(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def metrics_from_rows(rows: Iterable[dict[str, Any]], *, embed: bool = True, limit: int | None = None) -> list[dict[str, Any]]:
    out = []
    for number, row in enumerate(rows, start=1):
        if limit is not None and len(out) >= limit:
            break
        text, think, answer = _text(row.get("text")), _text(row.get("think")), _text(row.get("answer"))
        if text is None and answer is None:
            raise UserError(f"row {number}: needs a 'text' or an 'answer' field")
        if text is None:
            text = tagged(think, answer) if think and think.strip() else answer
        if answer is None:
            _, answer = split_output(text)
        try:
            target = _target(row)
        except UserError as exc:
            raise UserError(f"row {number}: {exc}") from None
        metrics = text_metrics(full_text=text, answer=answer, prompt=_text(row.get("prompt")), target=target, embed=embed)
        out.append({"id": row.get("id", number), "model": _text(row.get("model")) or "", **metrics})
    return out


def metrics_from_file(path: str | Path, *, embed: bool = True, limit: int | None = None) -> list[dict[str, Any]]:
    """Metrics of every row of a JSON-lines, CSV or parquet file of outputs."""
    from evaluation.battles import read_battles  # same readers, same one-line errors

    frame = read_battles(path)
    return metrics_from_rows(frame.to_dict(orient="records"), embed=embed, limit=limit)


def metrics_from_db(engine, *, embed: bool = True, limit: int | None = None) -> list[dict[str, Any]]:
    """Metrics of the database's complete generations (newest first). Format validity is judged on
    the stored plan and answer joined with their tags, so it says whether a plan was written."""
    import sqlalchemy as sa

    from storage.engine import session_scope
    from storage.models import Generation, GenerationStatus, ModelEntry, Prompt

    query = (
        sa.select(Generation.id, ModelEntry.name, Generation.think, Generation.answer, Prompt.text, Prompt.target_words)
        .join(ModelEntry, ModelEntry.id == Generation.model_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Generation.status == GenerationStatus.complete)
        .order_by(Generation.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    with session_scope(engine) as session:
        records = session.execute(query).all()
    rows = [
        {"id": gid, "model": model, "think": think if think else None, "answer": answer, "prompt": prompt, "target": target}
        for gid, model, think, answer, prompt, target in records
    ]
    return metrics_from_rows(rows, embed=embed)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means of each metric per model (format_valid as a share), ignoring missing values."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row.get("model") or "", []).append(row)
    out = []
    for model, group in sorted(by_model.items()):
        entry: dict[str, Any] = {"model": model, "texts": len(group)}
        for key in METRIC_KEYS:
            values = [float(r[key]) for r in group if r.get(key) is not None]
            entry[key] = round(sum(values) / len(values), 4) if values else None
        out.append(entry)
    return out
