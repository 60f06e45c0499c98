"""``lwz export preferences|prompts`` and ``lwz train reward|dpo|grpo``. Only argparse at import."""

from __future__ import annotations

import argparse

from lwz_cli.common import add_json_flag, open_engine, print_json


def register(subparsers) -> None:
    export = subparsers.add_parser("export", help="datasets for training, from the votes and prompts")
    sub = export.add_subparsers(dest="export_command", required=True)
    p = sub.add_parser("preferences", help="one row per battle with a decisive majority verdict")
    p.add_argument("--format", default="dpo", choices=["dpo", "reward", "kto"], help="row shape (default dpo)")
    p.add_argument("--layout", default="trl", choices=["trl", "openrlhf", "verl"],
                   help="column layout: trl (plain strings), openrlhf (conversations), verl (chat prompt)")
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
    add_json_flag(p)
    p.set_defaults(handler=cmd_export_prompts)

    train = subparsers.add_parser("train", help="train a reward model, DPO or GRPO with TRL")
    kinds = train.add_subparsers(dest="train_kind", required=True)
    for kind, text in (("reward", "a reward model from preference pairs"), ("dpo", "DPO from preference pairs"),
                       ("grpo", "GRPO on a prompt set with the LongWriter-Zero rewards")):
        p = kinds.add_parser(kind, help=text)
        p.add_argument("--base", required=True, metavar="MODEL", help="registered model name or model folder")
        source = p.add_mutually_exclusive_group(required=True)
        source.add_argument("--data", metavar="FILE", help="dataset from lwz export (.parquet/.jsonl)")
        source.add_argument("--from-db", action="store_true", help="build the dataset from the database")
        p.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
        p.add_argument("--max-steps", type=int, help="optimiser steps (default: one epoch)")
        p.add_argument("--config", metavar="YAML", help="extra TRL config fields")
        p.add_argument("--register", metavar="NAME", help="register the checkpoint as a local model (dpo/grpo)")
        p.add_argument("--learning-rate", type=float)
        p.add_argument("--batch-size", type=int)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--template", default="auto", choices=["auto", "think", "direct", "none"],
                       help="prompt rendering (default: the base model entry's template)")
        if kind != "grpo":
            p.add_argument("--max-length", type=int, help="token limit per sequence (default 1024 on CPU)")
        if kind == "grpo":
            p.add_argument("--rewards", default="length,format,anti_hacking",
                           help="comma list of length, format, anti_hacking, quality")
            p.add_argument("--combine", default="paper", choices=["paper", "sum"],
                           help="paper: normalise each reward per group then average; sum: TRL's weighted sum")
            p.add_argument("--reward-model", metavar="DIR", help="reward model folder for the quality reward")
            p.add_argument("--vllm-server", metavar="URL", help="a `trl vllm-serve` server for rollouts (GPU hosts)")
            p.add_argument("--num-generations", type=int)
            p.add_argument("--max-completion-length", type=int)
            p.add_argument("--tolerance", type=float, default=0.2, help="target range for --from-db prompts")
            p.add_argument("--default-words", type=int, help="target for --from-db prompts without one")
        else:
            _add_filter_flags(p)
        add_json_flag(p)
        p.set_defaults(handler=cmd_train)


def _add_filter_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-agreement", type=float, default=0.0, help="keep battles whose verdict has this vote share")
    p.add_argument("--min-votes", type=int, default=1, help="keep battles with at least this many valid votes")
    p.add_argument("--ties", default="drop", choices=["drop", "margin"], help="margin: keep ties with zero margin")
    p.add_argument("--include-flagged-votes", action="store_true")
    p.add_argument("--include-flagged-annotators", action="store_true")
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
        min_agreement=args.min_agreement, min_votes=args.min_votes, ties=args.ties, text=args.text,
        include_flagged_votes=args.include_flagged_votes, include_flagged_annotators=args.include_flagged_annotators,
        since=when(args.since, "since"), until=when(args.until, "until"),
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
    from storage.engine import session_scope
    from training.prompt_set import export_prompts

    with session_scope(open_engine(args, upgrade=True)) as session:
        result = export_prompts(session, out=args.out, layout=args.layout, tolerance=args.tolerance,
                                default_words=args.default_words, category=args.category)
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


def cmd_train(args: argparse.Namespace) -> int:
    from training.options import TrainOptions, load_yaml_config
    from training.runner import run_training

    grpo = args.train_kind == "grpo"
    options = TrainOptions(
        kind=args.train_kind, base=args.base, out=args.out, data=args.data, from_db=args.from_db,
        max_steps=args.max_steps, learning_rate=args.learning_rate, batch_size=args.batch_size, seed=args.seed,
        max_length=None if grpo else args.max_length, register=args.register, template=args.template,
        config=load_yaml_config(args.config), config_path=args.config,
        rewards=tuple(r.strip() for r in args.rewards.split(",") if r.strip()) if grpo else ("length",),
        combine=args.combine if grpo else "paper", reward_model=args.reward_model if grpo else None,
        vllm_server=args.vllm_server if grpo else None, num_generations=args.num_generations if grpo else None,
        max_completion_length=args.max_completion_length if grpo else None,
        prompts_tolerance=args.tolerance if grpo else 0.2, default_words=args.default_words if grpo else None,
        filters=None if grpo else _filters(args),
    )
    options.check()
    summary = run_training(open_engine(args, upgrade=True), options)
    if args.json:
        print_json(summary)
        return 0
    print(f"run {summary['run_id']} complete: {summary['metrics']['steps']} steps, checkpoint {summary['output_dir']}")
    if "registered" in summary:
        reg = summary["registered"]
        print(f"registered model {reg['name']} (parent {reg['parent']}); to serve it on a GPU host:")
        print(summary["vllm_serve"])
    elif args.train_kind != "reward":
        print(f"to serve it on a GPU host: vllm serve {summary['output_dir']}")
    return 0
