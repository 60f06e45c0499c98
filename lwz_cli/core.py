"""Core commands: ``db``, ``models``, ``prompts`` and ``users``."""

from __future__ import annotations

import argparse
import getpass
import sys

from generation.templates import TEMPLATE_NAMES
from lwz_cli.common import add_json_flag, open_engine, print_json, print_table


def register(subparsers) -> None:
    db = subparsers.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="create or upgrade the schema (safe to run twice)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_db_upgrade)

    models = subparsers.add_parser("models", help="registered models").add_subparsers(dest="models_command", required=True)
    p = models.add_parser("add", help="register a model")
    p.add_argument("name")
    p.add_argument("--backend", required=True, choices=["local", "openai"])
    p.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model-id", help="the id the server serves the model under (default: NAME)")
    p.add_argument("--path", help="local model folder (local backend; default: the bundled model)")
    p.add_argument("--template", choices=TEMPLATE_NAMES,
                   help="think (the model plans by itself), direct, plan (a numbered plan of sections, then each "
                        "section to its word budget: what keeps a small model's long texts from looping), or auto "
                        "(one request up to --one-request-words, plan above). Default: the bundled model's own "
                        "(auto) when NAME serves it, else think")
    p.add_argument("--one-request-words", type=int, metavar="N",
                   help="how many words the model writes well in one request (auto plans above it; the bundled "
                        "model's is measured: 2,000)")
    p.add_argument("--api", choices=["completions", "chat"],
                   help="openai backend: completions sends the model card's exact raw template to /v1/completions "
                        "(LongWriter-Zero's documented path); chat sends messages to /v1/chat/completions (default chat)")
    p.add_argument("--repetition-penalty", type=float, metavar="X",
                   help="the model's own repetition penalty, 1 to 2 (1 is none; a request may override it)")
    p.add_argument("--parent", help="the registered model this one was trained from")
    p.add_argument("--replace", action="store_true", help="update an existing entry of the same name")
    add_json_flag(p)
    p.set_defaults(handler=cmd_models_add)
    p = models.add_parser("prepare", help="convert the bundled model if needed, print its folder, register smollm2-135m")
    add_json_flag(p)
    p.set_defaults(handler=_cmd_models_prepare)
    p = models.add_parser("list", help="list registered models")
    add_json_flag(p)
    p.set_defaults(handler=cmd_models_list)

    prompts = subparsers.add_parser("prompts", help="writing requests").add_subparsers(dest="prompts_command", required=True)
    p = prompts.add_parser("import", help="import JSON lines with prompt, type, length (LongBench-Write format)")
    p.add_argument("file")
    add_json_flag(p)
    p.set_defaults(handler=cmd_prompts_import)
    p = prompts.add_parser("list", help="list prompts")
    p.add_argument("--category")
    p.add_argument("--limit", type=int)
    add_json_flag(p)
    p.set_defaults(handler=cmd_prompts_list)

    users = subparsers.add_parser("users", help="people who sign in").add_subparsers(dest="users_command", required=True)
    p = users.add_parser("add", help="add a user")
    p.add_argument("name")
    p.add_argument("--role", required=True, help="writer, annotator, researcher or admin")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_json_flag(p)
    p.set_defaults(handler=cmd_users_add)
    p = users.add_parser("list", help="list users")
    add_json_flag(p)
    p.set_defaults(handler=cmd_users_list)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.engine import current_revision

    engine = open_engine(args, upgrade=True)
    revision = current_revision(engine)
    if args.json:
        print_json({"revision": revision})
    else:
        print(f"database at revision {revision}", file=sys.stderr)
    return 0


def cmd_models_add(args: argparse.Namespace) -> int:
    from storage.engine import session_scope

    from core.errors import UserError
    from generation.request import check_repetition_penalty
    from generation.templates import ONE_REQUEST_WORDS
    from writing.models import register_model

    if args.api is not None and args.backend != "openai":
        raise UserError("--api chooses the server endpoint of an openai-backend model; the local backend has none")
    check_repetition_penalty(args.repetition_penalty)
    settings = {"api": args.api or "chat"} if args.backend == "openai" else {}
    settings.update(repetition_penalty=args.repetition_penalty, **{ONE_REQUEST_WORDS: args.one_request_words})
    engine = open_engine(args, upgrade=True)
    with session_scope(engine) as session:
        entry = register_model(
            session, name=args.name, backend=args.backend, base_url=args.base_url,
            model_id=args.model_id or (args.name if args.backend == "openai" else None),
            path=args.path, template=args.template, parent=args.parent, replace=args.replace,
            settings=settings,
        )
    if args.json:
        print_json(entry)
    else:
        print(f"registered model {entry.name} ({entry.backend}, template {entry.template})")
    return 0


def _cmd_models_prepare(args: argparse.Namespace) -> int:
    from lwz_cli.generate import cmd_models_prepare

    return cmd_models_prepare(args)


def cmd_models_list(args: argparse.Namespace) -> int:
    from storage.catalog import list_models
    from storage.engine import session_scope

    with session_scope(open_engine(args, upgrade=True)) as session:
        rows = [m.model_dump() for m in list_models(session)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "backend", "base_url", "model_id", "template", "sampling", "parent_id"])
    return 0


def cmd_prompts_import(args: argparse.Namespace) -> int:
    from storage.catalog import import_prompts
    from storage.engine import session_scope

    with session_scope(open_engine(args, upgrade=True)) as session:
        result = import_prompts(session, path=args.file)
    if args.json:
        print_json(result)
    else:
        print(f"imported {result['added']} prompts, skipped {result['skipped']} duplicates")
    return 0


def cmd_prompts_list(args: argparse.Namespace) -> int:
    from storage.catalog import list_prompts
    from storage.engine import session_scope

    with session_scope(open_engine(args, upgrade=True)) as session:
        rows = [p.model_dump() for p in list_prompts(session, category=args.category, limit=args.limit)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "category", "target_words", "language", "text"])
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from storage.engine import session_scope
    from core.errors import UserError
    from storage.users import add_user, validate_role

    validate_role(args.role)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
    if not password:
        raise UserError("the password is empty: a user needs one to sign in")
    with session_scope(open_engine(args, upgrade=True)) as session:
        user = add_user(session, name=args.name, role=args.role, password=password)
    if args.json:
        print_json({"id": user.id, "name": user.name, "role": user.role})
    else:
        print(f"added {user.role} {user.name}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from storage.engine import session_scope
    from storage.users import list_users

    with session_scope(open_engine(args, upgrade=True)) as session:
        rows = [{"id": u.id, "name": u.name, "role": u.role, "flagged": u.flagged} for u in list_users(session)]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["id", "name", "role", "flagged"])
    return 0
