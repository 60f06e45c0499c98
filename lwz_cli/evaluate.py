"""``lwz rate``, ``lwz leaderboard``, ``lwz annotators`` and ``lwz eval metrics|judge``. Only argparse at import."""

from __future__ import annotations

import argparse
import sys

from lwz_cli.common import add_json_flag, open_engine, print_json, print_table

TABLE_COLUMNS = ["rank", "model", "rating", "ci_low", "ci_high", "n", "wins", "losses", "ties", "reliable", "component"]
JSON_KEYS = ("model", "rating", "ci_low", "ci_high", "rank", "n", "needs", "reliable", "component")
STYLE_KEYS = ("rating_uncontrolled", "rank_uncontrolled", "rank_change")


def _add_rating_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="bt", choices=["bt", "elo"], help="Bradley–Terry MLE (default) or online Elo")
    p.add_argument("--ties", default="half", choices=["half", "davidson"], help="a tie is half a win (default) or Davidson's model")
    p.add_argument("--bootstrap", type=int, default=100, metavar="N", help="bootstrap samples for the 95%% intervals (default 100; 0: sandwich)")
    p.add_argument("--interval", choices=["bootstrap", "sandwich"], help="interval kind (default: bootstrap when N > 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--anchor", metavar="MODEL", help="put this model at --anchor-rating (default: the mean is)")
    p.add_argument("--anchor-rating", type=float, default=1000.0, help="rating of the anchor (default 1000)")
    p.add_argument("--min-battles", type=int, default=20,
                   help="a model with fewer battles gets no rating, only 'needs N more votes' (default 20)")
    control = p.add_mutually_exclusive_group()
    control.add_argument("--length-control", action="store_true", help="Bradley–Terry with the answer-length difference as a covariate")
    control.add_argument("--style-control", action="store_true",
                         help="Bradley–Terry with style covariates (length, headers, lists, bold, repetition), "
                              "shown beside the uncontrolled ratings")
    p.add_argument("--style-features", metavar="LIST",
                   help="comma-separated style features for --style-control (default: all five)")


def register(subparsers) -> None:
    p = subparsers.add_parser("rate", help="ratings with 95%% intervals from a battles file (CSV, JSON lines or parquet)")
    p.add_argument("file", help="columns model_a, model_b, winner (model_a/model_b/tie/both_bad); words_a, words_b for "
                                "--length-control; for --style-control words_/headers_/lists_/bold_/repetition_ a and b, "
                                "or text_a, text_b")
    p.add_argument("--by-category", action="store_true", help="one table per value of the category column")
    _add_rating_flags(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_rate)

    p = subparsers.add_parser("leaderboard", help="ratings from the database's votes (blind battles only)")
    p.add_argument("--category", help="only battles on prompts of this category")
    p.add_argument("--include-flagged", action="store_true", help="count flagged votes too")
    _add_rating_flags(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_leaderboard)

    p = subparsers.add_parser("annotators", help="annotator agreement, habits and vote hygiene (skew, side bias, "
                                                 "too-fast votes, flags); ban or unban an annotator")
    p.add_argument("--exclude-flagged", action="store_true", help="leave flagged votes out")
    p.add_argument("--flag-z", type=float, default=3.29, help="flag a z score beyond this (default 3.29: p < 0.001)")
    p.add_argument("--flag-min-votes", type=int, default=10, help="votes needed before a z score may flag (default 10)")
    p.add_argument("--flag-too-fast", type=float, default=0.3, help="flag a too-fast share above this (default 0.3)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_annotators)
    actions = p.add_subparsers(dest="annotators_command", metavar="{ban,unban,bans}")
    q = actions.add_parser("ban", help="ban an annotator: their votes leave ratings and exports (recorded, reversible)")
    q.add_argument("name", help="the annotator's user name")
    q.add_argument("--reason", default="", help="why (kept with the ban)")
    q.add_argument("--by", metavar="ADMIN", help="the admin who bans (recorded; must be an admin user)")
    add_json_flag(q)
    q.set_defaults(handler=cmd_ban)
    q = actions.add_parser("unban", help="lift an annotator's ban (the record stays)")
    q.add_argument("name", help="the annotator's user name")
    q.add_argument("--by", metavar="ADMIN", help="the admin who lifts it (recorded)")
    add_json_flag(q)
    q.set_defaults(handler=cmd_unban)
    q = actions.add_parser("bans", help="every ban, active and lifted")
    add_json_flag(q)
    q.set_defaults(handler=cmd_bans)

    ev = subparsers.add_parser("eval", help="automatic metrics and LLM-as-judge runs").add_subparsers(dest="eval_command", required=True)
    p = ev.add_parser("metrics", help="length score, format, repetition and keyword stuffing of texts")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="JSON lines / CSV / parquet with text (or think + answer), prompt, target")
    source.add_argument("--db", "--from-db", dest="from_db", action="store_true",
                        help="score the database's complete generations (the global --db URL, before 'eval', picks the database)")
    p.add_argument("--no-embeddings", action="store_true", help="skip the near-duplicate paragraph share (no model load)")
    p.add_argument("--limit", type=int, help="at most this many texts")
    add_json_flag(p)
    p.set_defaults(handler=cmd_eval_metrics)

    p = ev.add_parser("judge", help="pairwise LLM-as-judge run (both orders, ties allowed): win rates and BT ratings")
    p.add_argument("--candidate", required=True, help="registered model under test")
    p.add_argument("--baselines", help="comma-separated registered models to compare against (not with an Arena-Write file)")
    p.add_argument("--judge", required=True, help="registered model that judges")
    p.add_argument("--prompts", required=True,
                   help="JSON lines with prompt (and optional type, length), or an Arena-Write file (idx, question, "
                        "type, length, baseline_response; JSON array or lines) whose baseline answers are used")
    p.add_argument("--baseline-name", default="arena-write-baseline",
                   help="name of the Arena-Write file's baseline in the ratings (default arena-write-baseline)")
    p.add_argument("--min-battles", type=int, default=10, help="fewer judged battles than this: no rating (default 10)")
    p.add_argument("--judge-prompt", help="judge prompt file with {prompt}, {answer_1}, {answer_2} (default: evaluation/prompts/judge.md)")
    p.add_argument("--limit", type=int, help="use at most this many prompts")
    p.add_argument("--max-tokens", type=int, default=None, help="token cap for each written answer (default: from the target length)")
    p.add_argument("--judge-max-tokens", type=int, default=256, help="token cap for each verdict (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--out", help="also write every verdict as JSON lines here")
    add_json_flag(p)
    p.set_defaults(handler=cmd_eval_judge)
    _register_rubric(ev)
    p = ev.add_parser("agreement", help="per registered model: how often human votes, an LLM judge and a trained "
                                        "reward model agree on the same battles, with 95%% intervals")
    p.add_argument("--judge", help="registered model that judges the voted battles it has not judged yet (both orders)")
    p.add_argument("--reward-model", metavar="FOLDER", help="reward model from lwz train reward to score the voted battles")
    p.add_argument("--judge-prompt", help="judge prompt file (default: evaluation/prompts/judge.md)")
    p.add_argument("--judge-max-tokens", type=int, default=256, help="token cap for each verdict (default 256)")
    p.add_argument("--limit", type=int, help="judge or score at most this many battles")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(handler=cmd_eval_agreement)


def _register_rubric(ev) -> None:
    p = ev.add_parser("rubric", help="WritingBench-style rubric scoring: each request's own criteria, each scored 1-10 "
                                     "by a judge, stored; per-model mean with a 95%% interval")
    p.add_argument("--model", required=True, help="registered model that writes the answers")
    p.add_argument("--judge", required=True, help="registered model that scores (and writes missing criteria once)")
    p.add_argument("--prompts", required=True,
                   help="JSON lines with prompt (optional type, length) and optional criteria: "
                        "[{name, description, scale}] (missing: stored ones, or written once by the judge)")
    p.add_argument("--limit", type=int, help="use at most this many prompts")
    p.add_argument("--max-tokens", type=int, default=None, help="token cap for each written answer (default: from the length)")
    p.add_argument("--judge-max-tokens", type=int, default=256, help="token cap for each score (default 256)")
    p.add_argument("--criteria-max-tokens", type=int, default=1024, help="token cap when the judge writes criteria (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples over requests for the interval (default 1000)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_eval_rubric)


def cmd_eval_rubric(args: argparse.Namespace) -> int:
    from evaluation.rubric import RubricSettings, run_rubric

    settings = RubricSettings(
        model=args.model, judge=args.judge, prompts=args.prompts, limit=args.limit, max_tokens=args.max_tokens,
        judge_max_tokens=args.judge_max_tokens, criteria_max_tokens=args.criteria_max_tokens, seed=args.seed,
        bootstrap=args.bootstrap,
    )
    result = run_rubric(open_engine(args, upgrade=True), settings, progress=None if args.json else sys.stderr)
    if args.json:
        print_json(result)
        return 0
    rows = [{"line": r["line"], "criterion": s["criterion"], "score": s["score"] if s["score"] is not None else "invalid"}
            for r in result["requests"] for s in r["scores"]]
    print_table(rows, ["line", "criterion", "score"])
    for r in result["requests"]:
        for reason in r["invalid_criteria"]:
            print(f"line {r['line']}: invalid {reason}", file=sys.stderr)
        if "error" in r:
            print(f"line {r['line']}: {r['error']}", file=sys.stderr)
    s = result["summary"]
    interval = "" if s["ci_low"] is None else f" (95% interval {s['ci_low']:.2f} to {s['ci_high']:.2f})"
    mean = "n/a" if s["mean"] is None else f"{s['mean']:.2f}"
    print(f"\n{s['model']} judged by {s['judge']}: mean {mean}{interval} over {s['scored_requests']} of {s['requests']} "
          f"requests; {s['scores']} scores, {s['invalid_scores']} replies without a score, "
          f"{s['invalid_criteria']} invalid criteria")
    return 0


def cmd_eval_agreement(args: argparse.Namespace) -> int:
    from core.errors import UserError
    from evaluation.crosscheck import agreement_from_db, judge_battles, score_battles

    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    engine = open_engine(args, upgrade=True)
    progress = None if args.json else sys.stderr
    if args.judge:
        judge_battles(engine, judge=args.judge, max_tokens=args.judge_max_tokens, seed=args.seed, limit=args.limit,
                      judge_prompt=args.judge_prompt, progress=progress)
    if args.reward_model:
        from pathlib import Path

        from training.rewards import QualityReward

        folder = Path(args.reward_model)
        if not folder.is_dir():
            raise UserError(f"no such reward model folder: {folder}")
        score_battles(engine, name=f"rm:{folder.name}"[:128], score=QualityReward(str(folder)),
                      limit=args.limit, progress=progress)
    rows = agreement_from_db(engine)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no judge or reward-model verdicts stored yet: run with --judge NAME and/or --reward-model FOLDER")
        return 0
    print_table(rows, ["model", "pair", "battles", "agreement", "ci_low", "ci_high"])
    return 0


def _rating_options(args) -> dict:
    features = None
    if args.style_features is not None:
        features = [f.strip() for f in args.style_features.split(",") if f.strip()]
    return dict(
        method=args.method, ties=args.ties, bootstrap=args.bootstrap, interval=args.interval, seed=args.seed,
        anchor=args.anchor, anchor_rating=args.anchor_rating, min_battles=args.min_battles,
        length_control=args.length_control, style_control=args.style_control, style_features=features,
    )


def _print_result(result, *, title: str | None = None) -> None:
    if title:
        print(f"== {title}")
    rows = [{**r, "rating": _fmt(r["rating"]) if not r["needs"] else needs_text(r["needs"]),
             "ci_low": _fmt(r["ci_low"]), "ci_high": _fmt(r["ci_high"]),
             "rating_uncontrolled": _fmt(r.get("rating_uncontrolled")),
             "reliable": "yes" if r["reliable"] else "NO"} for r in result.records()]
    columns = TABLE_COLUMNS + (list(STYLE_KEYS) if result.style_control else [])
    print_table(rows, columns)
    extras = []
    if result.length_coef is not None:
        extras.append(f"length coefficient {result.length_coef:+.1f} points per unit of (a-b)/(a+b)")
    if result.style_coefs is not None:
        extras.append("style coefficients (points per s.d. of (a-b)/(a+b)): "
                      + ", ".join(f"{k} {v:+.1f}" for k, v in result.style_coefs.items()))
    if result.tie_nu is not None:
        extras.append(f"Davidson tie parameter nu {result.tie_nu:.3f}")
    print(f"{result.method}, ties {result.ties}, {result.interval} 95% intervals"
          + (f" ({result.bootstrap} samples, seed {result.seed})" if result.interval == "bootstrap" else "")
          + ("; " + "; ".join(extras) if extras else ""))
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _fmt(value) -> str:
    return "" if value is None else f"{value:.1f}"


def needs_text(needs: int) -> str:
    return f"needs {needs} more vote{'s' if needs != 1 else ''}"


def _json_rows(result):
    """The rows as JSON; with style control ``{"ratings": rows, "style_coefficients": {...}}``."""
    keys = JSON_KEYS + (STYLE_KEYS if result.style_control else ())
    rows = [{k: r[k] for k in keys} for r in result.records()]
    if not result.style_control:
        return rows
    return {"ratings": rows, "style_coefficients": {k: round(v, 4) for k, v in (result.style_coefs or {}).items()}}


def cmd_rate(args: argparse.Namespace) -> int:
    from evaluation.battles import read_battles
    from evaluation.ratings import compute_ratings, ratings_by_category

    frame = read_battles(args.file)
    options = _rating_options(args)
    if args.by_category:
        results = ratings_by_category(frame, **options)
        if args.json:
            print_json({name: _json_rows(r) for name, r in results.items()})
        else:
            for name, result in results.items():
                _print_result(result, title=name)
        return 0
    result = compute_ratings(frame, **options)
    _emit(result, as_json=args.json)
    return 0


def _emit(result, *, as_json: bool) -> None:
    """A rating result as one JSON value (warnings on stderr) or as a printed table."""
    if as_json:
        print_json(_json_rows(result))
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    else:
        _print_result(result)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from evaluation.leaderboard import leaderboard_from_db

    result, _ = leaderboard_from_db(
        open_engine(args, upgrade=True), category=args.category, include_flagged=args.include_flagged,
        **_rating_options(args),
    )
    _emit(result, as_json=args.json)
    return 0


def cmd_annotators(args: argparse.Namespace) -> int:
    from evaluation.leaderboard import annotators_from_db

    from evaluation.hygiene import HygieneSettings

    settings = HygieneSettings(z=args.flag_z, min_votes=args.flag_min_votes, too_fast_share=args.flag_too_fast)
    report = annotators_from_db(open_engine(args, upgrade=True), include_flagged=not args.exclude_flagged,
                                settings=settings)
    if args.json:
        print_json(report)
        return 0
    rows = [{**{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()},
             "flags": "; ".join(r["flags"]) or "-", "banned": "BANNED" if r["banned"] else ""}
            for r in report["annotators"]]
    print_table(rows, ["annotator", "votes", "median_reading_seconds", "agreement_with_majority", "agreement_z",
                       "left_share", "side_z", "skew_model", "skew_z", "too_fast_share", "flags", "banned"])
    print()
    print_table(report["pairs"], ["annotator_1", "annotator_2", "shared", "agreement", "kappa"])
    alpha = report["alpha"]
    print(f"\nKrippendorff's alpha: {'n/a' if alpha is None else f'{alpha:.3f}'} over {report['battles_with_several_votes']} battles with 2+ votes")
    return 0


def _ban_action(args, action) -> int:
    from storage.engine import session_scope

    with session_scope(open_engine(args, upgrade=True)) as session:
        result = action(session)
    if args.json:
        print_json(result)
    else:
        print(f"{result['annotator']}: {'ban lifted' if result.get('lifted') else 'banned'}")
    return 0


def cmd_ban(args: argparse.Namespace) -> int:
    from evaluation.hygiene import ban

    return _ban_action(args, lambda session: ban(session, name=args.name, reason=args.reason, by=args.by))


def cmd_unban(args: argparse.Namespace) -> int:
    from evaluation.hygiene import unban

    return _ban_action(args, lambda session: unban(session, name=args.name, by=args.by))


def cmd_bans(args: argparse.Namespace) -> int:
    from evaluation.hygiene import ban_history
    from storage.engine import session_scope

    with session_scope(open_engine(args, upgrade=True)) as session:
        rows = ban_history(session)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["ban_id", "annotator", "reason", "by", "banned_at", "lifted_at", "lifted_by"])
    return 0


def cmd_eval_metrics(args: argparse.Namespace) -> int:
    from evaluation.metric_report import metrics_from_db, metrics_from_file, summarize

    embed = not args.no_embeddings
    if args.from_db:
        rows = metrics_from_db(open_engine(args, upgrade=True), embed=embed, limit=args.limit)
    else:
        rows = metrics_from_file(args.file, embed=embed, limit=args.limit)
    summary = summarize(rows)
    if args.json:
        print_json({"rows": rows, "summary": summary})
        return 0
    print_table(rows, ["id", "model", "words", "target", "length_score", "format_valid", "distinct_2",
                       "longest_repeat", "near_duplicate_share", "keyword_stuffing"])
    print()
    print_table(summary, ["model", "texts", "length_score", "format_valid", "distinct_2", "longest_repeat",
                          "near_duplicate_share", "keyword_stuffing"])
    return 0


def cmd_eval_judge(args: argparse.Namespace) -> int:
    from core.errors import UserError
    from evaluation.arena_write import is_arena_write
    from evaluation.judge import JudgeSettings, run_judge

    arena_write = is_arena_write(args.prompts)
    if arena_write and args.baselines:
        raise UserError("an Arena-Write file carries its baseline answers: drop --baselines (--baseline-name names them)")
    if not arena_write and not args.baselines:
        raise UserError("--baselines is required unless --prompts is an Arena-Write file")
    baselines = [args.baseline_name] if arena_write else [m.strip() for m in args.baselines.split(",") if m.strip()]
    settings = JudgeSettings(
        candidate=args.candidate, baselines=baselines,
        judge=args.judge, prompts=args.prompts, judge_prompt=args.judge_prompt, limit=args.limit,
        max_tokens=args.max_tokens, judge_max_tokens=args.judge_max_tokens, seed=args.seed, bootstrap=args.bootstrap,
        out=args.out, arena_write=arena_write, min_battles=args.min_battles,
    )
    report = run_judge(open_engine(args, upgrade=True), settings, progress=None if args.json else sys.stderr)
    if args.json:
        print_json(report.summary())
        return 0
    print_table(report.win_rates(), ["baseline", "battles", "candidate_wins", "baseline_wins", "ties", "invalid", "win_rate"])
    print()
    _print_result(report.ratings)
    return 0
