"""The batch mode of ``lwz generate``: JSON-lines prompts in, one JSON line per finished
generation out, resumable. A prompt counts as done when the output file has a line for it;
failed and interrupted generations are not written, so a rerun tries them again. Every
generation is also stored as a row."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import aclosing
from pathlib import Path
from typing import Callable

from core.errors import UserError


def done_prompts(out: Path) -> set[str]:
    """Content hashes of the prompts already in ``out`` (a missing file means none)."""
    from storage.catalog import prompt_hash

    if not out.is_file():
        return set()
    done = set()
    with out.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                done.add(prompt_hash(json.loads(line)["prompt"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{out}:{number}: not a line this command wrote; use another --out file") from None
    return done


def run_batch(engine, *, args: argparse.Namespace, make_request: Callable) -> int:
    """Generate every prompt of ``args.prompts`` not yet in ``args.out``. Returns the exit code
    (1 when some generation failed)."""
    from tqdm import tqdm

    from generation.events import Started
    from writing.models import lookup_model
    from writing.status import WRITTEN
    from writing.store import generate_and_store
    from lwz_cli.common import print_json, row_summary
    from storage.catalog import parse_prompt_lines, prompt_hash
    from storage.engine import session_scope
    from storage.generations import get_generation, mark_stale_interrupted

    source, out = Path(args.prompts), Path(args.out)
    if not source.is_file():
        raise UserError(f"no such file: {source}")
    with source.open(encoding="utf-8") as handle:
        rows = parse_prompt_lines(handle, source=str(source))
    lookup_model(engine, name=args.model)
    done = done_prompts(out)
    todo, seen = [], set(done)
    for row in rows:
        request = make_request(row["text"], row["target_words"])  # validates every prompt before any work
        key = prompt_hash(row["text"])
        if key not in seen:
            seen.add(key)
            todo.append((row, request))
    with session_scope(engine) as session:
        mark_stale_interrupted(session)
    counts = {"done": 0, "failed": 0, "skipped": len(rows) - len(todo)}
    errors: list[str] = []

    async def one(row, request, limiter, bar, sink) -> None:
        async with limiter:
            generation_id = None
            try:
                async with aclosing(generate_and_store(engine, model=args.model, request=request, category=row["category"],
                                                        template=args.template)) as events:
                    async for event in events:
                        if isinstance(event, Started):
                            generation_id = event.generation_id
            except UserError as exc:
                errors.append(str(exc))
            result = None
            if generation_id is not None:
                with session_scope(engine) as session:
                    result = get_generation(session, generation_id=generation_id)
            if result is not None and result.status in WRITTEN:
                line = {"prompt": row["text"], "type": row["category"], "length": row["target_words"], **row_summary(result)}
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
                sink.flush()
                counts["done"] += 1
            else:
                counts["failed"] += 1
                if result is not None and result.error:
                    errors.append(result.error)
            bar.update(1)

    async def main() -> None:
        limiter = asyncio.Semaphore(args.concurrency)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as sink, tqdm(total=len(todo), file=sys.stderr, unit="prompt",
                                                          disable=args.json, desc="generate") as bar:
            await asyncio.gather(*(one(row, request, limiter, bar, sink) for row, request in todo))

    asyncio.run(main())
    summary = {**counts, "out": str(out), "errors": sorted(set(errors))[:5]}
    if args.json:
        print_json(summary)
    else:
        print(f"{counts['done']} generated, {counts['skipped']} already done, {counts['failed']} failed -> {out}", file=sys.stderr)
        for message in summary["errors"]:
            print(f"  error: {message}", file=sys.stderr)
    return 1 if counts["failed"] else 0
