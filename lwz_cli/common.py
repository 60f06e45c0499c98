"""Helpers shared by every package's command-line module: database access and output."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON value on stdout and nothing else")


def open_engine(args: argparse.Namespace, *, upgrade: bool = False):
    """The engine for the global ``--db`` option, checked to answer (and upgraded if asked)."""
    from storage.engine import check_connection, make_engine, upgrade as upgrade_schema

    engine = make_engine(args.db)
    if upgrade:
        upgrade_schema(engine)
    else:
        check_connection(engine)
    return engine


def to_jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items() if k != "password_hash"}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    json.dump(to_jsonable(value), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A plain aligned text table on stdout."""
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= 60 else text[:59] + "…"


def arena_fill_command(name: str, parent: str | None, *, db: str | None = None, limit: int | None = None) -> str:
    """The exact ``lwz battles fill`` line that puts a newly registered model into the arena.

    Registering a checkpoint does not write any texts with it; until this runs, it has no battles.
    ``limit``: the prompts it takes (``--limit``), so that the line printed for a CPU ends.
    """
    import shlex

    models = ",".join(m for m in (parent, name) if m) if parent else f"{name},ANOTHER_MODEL"
    database = f"--db {shlex.quote(db)} " if db else ""
    bound = f" --limit {limit}" if limit else ""
    return f"lwz {database}battles fill --all --models {shlex.quote(models)} --per-prompt 1{bound}"


def row_summary(row) -> dict:
    """The JSON shape of one finished generation (``--json`` and batch lines)."""
    return {
        "id": row.id, "status": row.status, "finish_reason": row.finish_reason, "think": row.think,
        "answer": row.answer, "answer_words": row.answer_words, "completion_tokens": row.completion_tokens,
        "ttft_ms": row.ttft_ms, "duration_ms": row.duration_ms, "ending": (row.params or {}).get("ending"),
        "continuations": len((row.params or {}).get("continuations", [])),
        "method": (row.params or {}).get("method"),
        "loops_stopped": len((row.params or {}).get("loops") or []),
    }

