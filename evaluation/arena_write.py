"""Arena-Write's file layout for ``lwz eval judge``: requests that carry their baseline answer.

LongWriter-Zero's Arena-Write benchmark compares a model's answers with stored baseline answers,
judged in both orders, and reports Elo. Its file holds one record per request with the fields
``idx``, ``question`` (the request), ``type`` (category), ``length`` (required words) and
``baseline_response``. The file is a JSON array, or JSON lines (one record a line).

A judge run on such a file writes only the candidate's answers; the baseline's are read from the
file and rated under one name (``--baseline-name``), anchored at 1000 so that the candidate's
rating reads as its gap to the baseline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from core.errors import UserError

FIELDS = ("idx", "question", "type", "length", "baseline_response")
DEFAULT_BASELINE_NAME = "arena-write-baseline"


def _records(path: Path) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs from a JSON array or JSON lines; ``where`` names the record for errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return [(f"{path}: record {i}", item) for i, item in enumerate(items, start=1)]
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    return out


def is_arena_write(path: str) -> bool:
    """True when the file's first record has Arena-Write's ``question`` and ``baseline_response``."""
    file = Path(path)
    if not file.is_file():
        return False
    try:
        records = _records(file)
    except UserError:
        return False
    return bool(records) and isinstance(records[0][1], dict) and {"question", "baseline_response"} <= set(records[0][1])


def read_arena_write(path: str, *, limit: Optional[int] = None) -> list[dict[str, Any]]:
    """The requests as judge prompts: ``text``, ``category``, ``target_words``, ``idx`` and ``baseline``.

    UserError naming the record for a missing field, an empty request or answer, a bad length or
    a repeated ``idx``.
    """
    file = Path(path)
    if not file.is_file():
        raise UserError(f"no such prompts file: {file}")
    rows, seen = [], set()
    for where, record in _records(file):
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected an object with the fields {', '.join(FIELDS)}")
        missing = [f for f in FIELDS if f not in record]
        if missing:
            raise UserError(f"{where}: lacks the field(s) {', '.join(missing)} (Arena-Write has {', '.join(FIELDS)})")
        for field in ("question", "baseline_response"):
            if not isinstance(record[field], str) or not record[field].strip():
                raise UserError(f"{where}: '{field}' must be a non-empty string")
        length = record["length"]
        if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length <= 0):
            raise UserError(f"{where}: 'length' must be a positive integer, got {length!r}")
        if record["idx"] in seen:
            raise UserError(f"{where}: idx {record['idx']!r} appears twice")
        seen.add(record["idx"])
        rows.append({"idx": record["idx"], "text": record["question"], "target_words": length,
                     "category": None if record["type"] is None else str(record["type"]),
                     "baseline": record["baseline_response"].strip()})
    if not rows:
        raise UserError(f"{file}: no requests")
    return rows[:limit] if limit else rows
