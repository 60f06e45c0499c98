"""``lwz generate`` (one prompt, streamed; or a JSON-lines batch that resumes) and
``lwz models prepare`` (registered from ``lwz_cli.core``, which owns the ``models`` group)."""

from __future__ import annotations

import argparse

from generation.request import DEFAULT_TEMPERATURE, DEFAULT_TOP_P
from generation.templates import TEMPLATE_NAMES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="write with a registered model",
        description="Stream one generation (think part to stderr, answer to stdout), or run a batch "
        "of JSON-lines prompts (prompt, type, length) into an output file, resuming where it stopped.",
    )
    p.add_argument("--model", help="registered model name (see lwz models list); not with --continue")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the writing request")
    source.add_argument("--prompts", metavar="FILE.jsonl", help="a batch of requests, one JSON object a line")
    source.add_argument("--continue", dest="continue_id", type=int, metavar="ID",
                        help="continue stored generation ID (interrupted, cut, short): the same row grows")
    p.add_argument("--template", choices=TEMPLATE_NAMES,
                   help="prompt template instead of the model's own: think, direct, plan (plan the sections, then "
                        "write them), or auto (one request up to the length the model holds, plan above)")
    p.add_argument("--out", metavar="FILE.jsonl", help="batch output (required with --prompts); rows already there are skipped")
    p.add_argument("--concurrency", type=int, default=1, help="batch requests in flight at once (default 1)")
    p.add_argument("--target-words", type=int, help="target length in words (batch default: each line's 'length')")
    p.add_argument("--think-budget", type=int, help="cap on planning tokens; 0 skips planning")
    p.add_argument("--max-tokens", type=int, help="cap on answer tokens when no target is given")
    p.add_argument("--seed", type=int, help="sampling seed (default: random, recorded with the row)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    p.add_argument("--top-p", type=float, default=DEFAULT_TOP_P)
    p.add_argument("--repetition-penalty", type=float, metavar="X",
                   help="1 to 2; 1 is none (default: the model's own, 1.1 for the bundled model)")
    p.add_argument("--category", help="prompt category to record (single prompt)")
    p.add_argument("--any-language", action="store_true",
                   help="write even when the request's language is not one the model writes (single prompt)")
    p.add_argument("--json", action="store_true", help="print one JSON value on stdout and nothing else")
    p.set_defaults(handler=cmd_generate)


def cmd_models_prepare(args: argparse.Namespace) -> int:
    """Convert the bundled model if needed, print its folder, register ``smollm2-135m`` (local) if absent,
    with the bundled model's own defaults (``writing.models.register_model``)."""
    from generation.bundled import BUNDLED_NAME, ensure_bundled_model
    from lwz_cli.common import open_engine, print_json
    from storage.catalog import get_model
    from storage.engine import session_scope
    from writing.models import register_model

    folder = ensure_bundled_model()
    with session_scope(open_engine(args, upgrade=True)) as session:
        entry = get_model(session, name=BUNDLED_NAME)
        created = entry is None
        if created:
            entry = register_model(session, name=BUNDLED_NAME, backend="local")
        summary = {"folder": str(folder), "model": entry.name, "backend": entry.backend, "template": entry.template,
                   "registered": created}
    if getattr(args, "json", False):
        print_json(summary)
    else:
        print(folder)
    return 0


def _request(args: argparse.Namespace, prompt: str, target_words=None):
    from generation.request import GenerationRequest

    return GenerationRequest(
        prompt=prompt, target_words=args.target_words if args.target_words is not None else target_words,
        think_budget=args.think_budget, temperature=args.temperature, top_p=args.top_p, seed=args.seed,
        max_tokens=args.max_tokens, repetition_penalty=args.repetition_penalty,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from core.errors import UserError

    if args.continue_id is not None:
        given = [flag for flag, value in (("--model", args.model), ("--template", args.template), ("--out", args.out),
                                          ("--target-words", args.target_words), ("--seed", args.seed)) if value is not None]
        if given:
            raise UserError(f"--continue takes the stored generation's own settings; drop {', '.join(given)}")
        return _generate_one(args)
    if not args.model:
        raise UserError("--model is required (see lwz models list)")
    if args.prompts is not None:
        if not args.out:
            raise UserError("--prompts needs --out FILE.jsonl for the results")
        if args.concurrency < 1:
            raise UserError(f"--concurrency must be 1 or more, got {args.concurrency}")
        from lwz_cli.batch import run_batch
        from lwz_cli.common import open_engine

        return run_batch(open_engine(args, upgrade=True), args=args, make_request=lambda text, target: _request(args, text, target))
    if args.out:
        raise UserError("--out goes with --prompts (a batch); a single --prompt streams to stdout")
    return _generate_one(args)


def _generate_one(args: argparse.Namespace) -> int:
    import asyncio
    import sys
    from contextlib import aclosing

    from generation.events import Answer, Error, Queued, Started, Think
    from writing.store import generate_and_store
    from lwz_cli.common import open_engine, print_json, row_summary
    from storage.engine import session_scope
    from storage.generations import get_generation
    from writing.continuation import nothing_added
    from writing.status import CONTINUABLE, WRITTEN, loops_caught_note

    engine = open_engine(args, upgrade=True)
    if args.continue_id is not None:
        from writing.continuation import continue_and_store

        source = continue_and_store(engine, generation_id=args.continue_id)
    else:
        request = _request(args, args.prompt)
        if not args.any_language:
            _check_language(engine, args.model, request.prompt)
        source = generate_and_store(engine, model=args.model, request=request,
                                    category=args.category, template=args.template)
    dim = ("\033[2m", "\033[0m") if sys.stderr.isatty() else ("", "")
    quiet = args.json

    async def consume() -> int:
        generation_id = None
        async with aclosing(source) as events:
            async for event in events:
                if isinstance(event, Started):
                    generation_id = event.generation_id
                elif quiet:
                    continue
                elif isinstance(event, Think):
                    sys.stderr.write(dim[0] + event.text + dim[1])
                    sys.stderr.flush()
                elif isinstance(event, Answer):
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, Queued):
                    print(f"[queued: position {event.position}]", file=sys.stderr)
                elif isinstance(event, Error):
                    print(f"\nlwz: error: {event.message}", file=sys.stderr)
        return generation_id

    generation_id = asyncio.run(consume())
    with session_scope(engine) as session:
        row = get_generation(session, generation_id=generation_id)
    stuck = nothing_added(row) if args.continue_id is not None else None
    if quiet:
        print_json(row_summary(row))
    else:
        sys.stdout.write("\n")
        seconds = (row.duration_ms or 0) / 1000
        ttft = f"{row.ttft_ms:.0f} ms" if row.ttft_ms is not None else "-"
        more = f"; to write on: lwz generate --continue {row.id}" if (
            row.status in CONTINUABLE and row.answer_words and not stuck) else ""
        target, method = (row.params or {}).get("target_words"), (row.params or {}).get("method")
        if method and args.continue_id is None:
            print(f"method: {method['why']}", file=sys.stderr)
        print(f"generation {row.id}: {row.status} ({row.finish_reason}), {row.answer_words} words"
              f"{f' of {target:,}' if target else ''}, {row.completion_tokens or 0} tokens, first token {ttft}, "
              f"{seconds:.1f} s{more}", file=sys.stderr)
        caught = loops_caught_note(row.params, row.finish_reason)
        if caught:
            print(caught, file=sys.stderr)
    if stuck:
        print(f"lwz: error: generation {row.id} did not grow: {stuck}", file=sys.stderr)
        return 1
    return 0 if row.status in WRITTEN else 1


def _check_language(engine, model: str, prompt: str) -> None:
    """UserError (exit 2, before any row is written) when the model does not write the request's language."""
    from core.errors import UserError
    from generation.language import language_refusal
    from writing.models import lookup_model

    refusal = language_refusal(lookup_model(engine, name=model), prompt)
    if refusal is not None:
        raise UserError(f"{refusal}; or pass --any-language to write anyway")

