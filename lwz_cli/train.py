"""``lwz export preferences|prompts`` and ``lwz train reward|dpo|kto|grpo|pretrain``. Only argparse (and the
plain ``TrainOptions`` dataclass, whose field metadata *is* the train flags and their help) at import."""

from __future__ import annotations

import argparse
import shlex

from lwz_cli.common import add_json_flag, arena_fill_command, open_engine, print_json

def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="datasets for training, from the votes and prompts")
    sub = export.add_subparsers(dest="export_command", required=True)
    p = sub.add_parser("preferences", help="one row per battle with a decisive verdict (kto: both-bad rows too)")
    p.add_argument("--format", default="dpo", choices=["dpo", "reward", "kto"], help="row shape (default dpo)")
    p.add_argument("--layout", default="trl", choices=["trl", "openrlhf", "verl"],
                   help="column layout: trl (plain strings, tokenised raw by TRL), openrlhf (conversations), "
                        "verl (chat prompt)")
    p.add_argument("--out", required=True, help="output file, .parquet or .jsonl")
    _add_filter_flags(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_export_preferences)

    p = sub.add_parser("prompts", help="the GRPO prompt set with a target word range per prompt")
    p.add_argument("--out", required=True, help="output file, .parquet or .jsonl")
    p.add_argument("--layout", default="trl", choices=["trl", "openrlhf", "verl"])
    p.add_argument("--tolerance", type=float, default=0.2, help="range is target*(1±tolerance) (default 0.2)")
    p.add_argument("--default-words", type=int, help="target for prompts without one (default: leave them out)")
    p.add_argument("--category", help="only prompts of this category")
    p.add_argument("--ranges-from", metavar="URL",
                   help="an OpenAI-compatible server (http://HOST:PORT/v1) whose model predicts each prompt's word "
                        "range under the paper's rules (answers that break them are rejected and listed)")
    p.add_argument("--range-model", metavar="NAME", help="the model name on --ranges-from")
    p.add_argument("--range-max-tokens", type=int, default=1024, metavar="N",
                   help="token limit of each range answer (default 1024; a thinking model needs more)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_export_prompts)

    train = subparsers.add_parser("train", help="train a reward model, DPO, KTO or GRPO, or continually pretrain, "
                                                 "with TRL")
    from training.kinds import KINDS

    kinds = train.add_subparsers(dest="train_kind", required=True)
    for kind in KINDS.values():
        p = kinds.add_parser(kind.name, help=kind.help)
        add_option_flags(p, kind.name)
        if kind.vote_filters:
            _add_filter_flags(p)
        add_json_flag(p)
        p.set_defaults(handler=cmd_train)


def _option_fields(kind: str):
    """TrainOptions fields that are flags of ``lwz train KIND`` (those with help that the kind takes)."""
    import dataclasses

    from training.kinds import takes
    from training.options import TrainOptions

    for f in dataclasses.fields(TrainOptions):
        if f.metadata.get("help") and takes(kind, f.name):
            yield f


def add_option_flags(p: argparse.ArgumentParser, kind: str) -> None:
    """One flag per TrainOptions field, its help, type, choices and default taken from the field."""
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in _option_fields(kind):
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        target = p
        if meta.get("group"):
            if meta["group"] not in groups:
                groups[meta["group"]] = p.add_mutually_exclusive_group(required=True)
            target = groups[meta["group"]]
        kwargs: dict = {"dest": f.name, "help": meta["help"]}
        if f.default is False:
            kwargs["action"] = "store_true"
        else:
            if meta.get("parse") == "comma":
                kwargs["default"] = ",".join(f.default) if f.default else None
            elif meta.get("parse") == "files":
                kwargs["nargs"] = "+"
            else:
                kwargs["type"] = float if "float" in str(f.type) else int if "int" in str(f.type) else str
                if kwargs["type"] is not str:
                    kwargs["metavar"] = "X" if kwargs["type"] is float else "N"
                if f.default is not None and not callable(f.default):
                    kwargs["default"] = f.default
            for key in ("metavar", "choices"):
                if key in meta:
                    kwargs[key] = meta[key]
            if meta.get("required") and not meta.get("group"):
                kwargs["required"] = True
            if "default" in kwargs and kwargs["default"] is not None:
                kwargs["help"] += f" (default {kwargs['default']})" if "(default" not in kwargs["help"] else ""
        target.add_argument(flag, **kwargs)


def options_from_args(args: argparse.Namespace):
    """The TrainOptions for parsed ``lwz train KIND`` arguments (flags named by the fields)."""
    from training.options import TrainOptions, load_yaml_config

    from training.kinds import kind_of

    kind = args.train_kind
    values = {}
    for f in _option_fields(kind):
        value = getattr(args, f.name)
        if f.metadata.get("parse") == "comma" and value is not None:
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        elif f.metadata.get("parse") == "files":
            value = tuple(part.strip() for item in value or () for part in item.split(",") if part.strip())
        values[f.name] = value
    return TrainOptions(kind=kind, config=load_yaml_config(values.get("config_path")),
                        filters=_filters(args) if kind_of(kind).vote_filters else None, **values)


def _add_filter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-agreement", type=float, default=0.0, help="keep battles whose verdict has this vote share")
    p.add_argument("--min-votes", type=int, default=1, help="keep battles with at least this many valid votes")
    p.add_argument("--include-flagged-votes", action="store_true")
    p.add_argument("--include-flagged-annotators", action="store_true")
    p.add_argument("--include-named", action="store_true",
                   help="keep battles whose text names a model (not blind; left out by default, as in ratings)")
    p.add_argument("--since", metavar="ISO", help="votes at or after this time (e.g. 2026-11-01T00:00+00:00)")
    p.add_argument("--until", metavar="ISO", help="votes before this time")
    p.add_argument("--text", default="full", choices=["full", "answer"], help="full: plan and answer; answer only")


def _filters(args: argparse.Namespace):
    from datetime import datetime

    from core.errors import UserError
    from training.preferences import PreferenceFilters

    def when(value, flag):
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise UserError(f"--{flag} {value!r} is not an ISO time (e.g. 2026-11-01T00:00+00:00)") from None

    return PreferenceFilters(
        min_agreement=args.min_agreement, min_votes=args.min_votes, text=args.text,
        include_flagged_votes=args.include_flagged_votes, include_flagged_annotators=args.include_flagged_annotators,
        include_named=args.include_named, since=when(args.since, "since"), until=when(args.until, "until"),
    )


def cmd_export_preferences(args: argparse.Namespace) -> int:
    from storage.engine import session_scope
    from training.preferences import export_preferences, shape_rows_check

    filters = _filters(args)
    shape_rows_check(fmt=args.format, layout=args.layout)
    with session_scope(open_engine(args, upgrade=True)) as session:
        result = export_preferences(session, out=args.out, fmt=args.format, layout=args.layout, filters=filters)
    _report(args, result, f"wrote {result['rows']} rows ({result['pairs']} battles) to {result['path']}")
    return 0


def cmd_export_prompts(args: argparse.Namespace) -> int:
    import os

    from core.errors import UserError
    from storage.engine import session_scope
    from training.prompt_set import export_prompts

    ask = None
    if bool(args.ranges_from) != bool(args.range_model):
        raise UserError("--ranges-from URL and --range-model NAME go together")
    if args.ranges_from:
        from training.range_model import openai_asker

        if not args.ranges_from.startswith(("http://", "https://")):
            raise UserError(f"--ranges-from must be an http(s) URL ending in /v1, got {args.ranges_from!r}")
        ask = openai_asker(base_url=args.ranges_from, model=args.range_model, max_tokens=args.range_max_tokens,
                           api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
    with session_scope(open_engine(args, upgrade=True)) as session:
        result = export_prompts(session, out=args.out, layout=args.layout, tolerance=args.tolerance,
                                default_words=args.default_words, category=args.category, ask_range=ask,
                                range_source=f"model {args.range_model}" if ask else None)
    _report(args, result, f"wrote {result['rows']} prompts to {result['path']}")
    return 0


def _report(args: argparse.Namespace, result: dict, line: str) -> None:
    if args.json:
        print_json(result)
        return
    print(line)
    dropped = {k: v for k, v in result.items() if k.startswith("dropped") and v}
    if dropped:
        print("left out: " + ", ".join(f"{k.removeprefix('dropped_')}={v}" for k, v in dropped.items()))
    for key, value in result.items():
        if key.startswith("rows_") and value:
            print(f"{key.removeprefix('rows_').replace('_', ' ')}: {value}")


def cmd_train(args: argparse.Namespace) -> int:
    from training.kinds import UNGATED, kind_of
    from training.runner import run_training

    options = options_from_args(args)
    options.check()
    engine = open_engine(args, upgrade=True)
    summary = run_training(engine, options)
    if args.json:
        print_json(summary)
        return 0
    tokens = summary["metrics"].get("tokens")
    seen = f", {tokens['seen']} tokens seen" if tokens else ""
    print(f"run {summary['run_id']} complete: {summary['metrics']['steps']} steps{seen}, checkpoint {summary['output_dir']}")
    kind = kind_of(args.train_kind)
    if "registered" in summary and kind.registers == UNGATED:
        reg = summary["registered"]
        parent = f" (parent {reg['parent']})" if reg["parent"] else ""
        print(f"registered model {reg['name']}{parent}, a base for the next stage, e.g.:")
        print(f"lwz train grpo --base {shlex.quote(reg['name'])} --data prompts.parquet --out runs/grpo")
    elif "registered" in summary:
        reg = summary["registered"]
        if summary["metrics"]["gate"].get("forced"):
            regressed = ", ".join(summary["metrics"]["gate"]["regressed"]) or "the gate did not run"
            print(f"registered despite the reward-hacking gate (--force; {regressed}), recorded in run {summary['run_id']}")
        print(f"registered model {reg['name']} (parent {reg['parent']}); to serve it on a GPU host:")
        print(summary["vllm_serve"])
        print(arena_fill_advice(engine, reg["name"], reg["parent"], db=args.db))
    elif kind.registers is not None:
        print(f"to serve it on a GPU host: vllm serve {summary['output_dir']}")
    return 0


def arena_fill_advice(engine, name: str, parent: str | None, *, db: str | None) -> str:
    """The lines after registration: a fill bounded for a CPU, with what it writes and how long it takes."""
    from arena.fill import CPU_FILL_LIMIT, FillOptions, fill_estimate
    from core.errors import UserError

    line = arena_fill_command(name, parent, db=db, limit=CPU_FILL_LIMIT)
    try:
        cost = fill_estimate(engine, options=FillOptions(models=[parent or "", name], all_prompts=True,
                                                           limit=CPU_FILL_LIMIT))
        size = (f"{cost['answers']} answers, about {cost['words']:,} words: about {cost['cpu_minutes']} minutes "
                "with the embedded model on a CPU, minutes on a GPU server")
    except UserError:
        size = f"up to {2 * CPU_FILL_LIMIT} answers"
    return (f"it has no battles yet; to put it in the arena, run ({size}; drop --limit to take every arena "
            f"prompt):\n{line}")
