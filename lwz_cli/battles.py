"""``lwz battles``: fill the battle pool, form battles, list them.

Imports only argparse at the top; handlers import what they need.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from lwz_cli.common import add_json_flag

    battles = subparsers.add_parser("battles", help="the arena's battle pool: fill, form, list")
    sub = battles.add_subparsers(dest="battles_command", metavar="ACTION", required=True)

    fill = sub.add_parser("fill", help="pre-generate answers for prompts with several models, then form battles")
    source = fill.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", metavar="FILE", help="JSON-lines prompts (prompt, optional type and length)")
    source.add_argument("--all", action="store_true", help="every prompt already in the database")
    fill.add_argument("--models", required=True, help="comma-separated registered model names (at least two)")
    fill.add_argument("--per-prompt", type=int, default=1, metavar="K", help="complete answers per model and prompt")
    fill.add_argument("--concurrency", type=int, default=4, metavar="N", help="generations at once (default 4)")
    fill.add_argument("--seed", type=int, default=0, help="base seed for sampling and side order (default 0)")
    fill.add_argument("--target-words", type=int, default=None,
                      help="target length for prompts that do not name one (default: none)")
    fill.add_argument("--max-tokens", type=int, default=None, help="cap on tokens per answer (default: the model's)")
    fill.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    fill.add_argument("--name-words", metavar="FILE", help="model/vendor word list (one a line) instead of the built-in")
    add_json_flag(fill)
    fill.set_defaults(handler=cmd_fill)

    form = sub.add_parser("form", help="form battles from pooled texts that have none yet (e.g. sent from Write)")
    form.add_argument("--seed", type=int, default=0)
    form.add_argument("--name-words", metavar="FILE")
    add_json_flag(form)
    form.set_defaults(handler=cmd_form)

    listing = sub.add_parser("list", help="battles with their models and vote counts (researchers only)")
    listing.add_argument("--limit", type=int, default=50)
    add_json_flag(listing)
    listing.set_defaults(handler=cmd_list)


def cmd_fill(args: argparse.Namespace) -> int:
    from lwz_cli.common import open_engine, print_json
    from arena.fill import FillOptions, fill_pool

    options = FillOptions(
        models=[m.strip() for m in args.models.split(",") if m.strip()], per_prompt=args.per_prompt,
        concurrency=args.concurrency, seed=args.seed, prompts_file=args.prompts, all_prompts=args.all,
        target_words=args.target_words, max_tokens=args.max_tokens, limit=args.limit, name_words=args.name_words,
    )
    engine = open_engine(args, upgrade=True)
    summary = fill_pool(engine, options=options, progress=not args.json)
    if args.json:
        print_json(summary)
    else:
        print(f"generated {summary['generated']} ({summary['complete']} complete, {summary['not_complete']} not), "
              f"skipped {summary['already_done']} already done; formed {summary['battles_formed']} battles "
              f"({summary['names_model']} name a model); pool: {summary['battles_total']} battles")
        if summary["why_no_battles"]:
            print(f"no battle formed: {summary['why_no_battles']}")
    return 1 if summary["not_complete"] and not summary["complete"] else 0


def cmd_form(args: argparse.Namespace) -> int:
    from lwz_cli.common import open_engine, print_json
    from storage.engine import session_scope
    from arena.pool import form_battles, load_name_words

    words = load_name_words(args.name_words)
    engine = open_engine(args, upgrade=True)
    with session_scope(engine) as session:
        created = form_battles(session, seed=args.seed, name_words=words)
    if args.json:
        print_json({"battles_formed": len(created), "battle_ids": created})
    else:
        print(f"formed {len(created)} battles")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from lwz_cli.common import open_engine, print_json, print_table
    from storage.arena import list_battles
    from storage.engine import session_scope

    engine = open_engine(args)
    with session_scope(engine) as session:
        rows = list_battles(session, limit=args.limit)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["battle_id", "model_left", "model_right", "votes", "mode", "names_model"])
    return 0
