"""Annotator reliability and vote hygiene for the Data tab: agreement, habits, flags, and admin bans.

Wire it inside the Data tab's builder with ``build_annotators_panel(gr, ctx)``. Researchers see
the report; only an admin may ban or lift a ban (checked on the server, in the handler).
No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation at run time.
"""

from typing import Any

from sqlalchemy.engine import Engine

from core.errors import UserError
from webapp.rendering import safe_markdown

ANNOTATOR_COLUMNS = ["annotator", "votes", "median_reading_seconds", "agreement_with_majority", "agreement_z",
                     "left_share", "side_z", "skew_model", "skew_z", "too_fast_share", "instant_share", "tie_share",
                     "both_bad_share", "flags", "banned"]
PAIR_COLUMNS = ["annotator_1", "annotator_2", "shared", "agreement", "kappa"]


def annotators_view(engine: Engine) -> dict[str, Any]:
    """``summary`` (markdown), ``annotators`` and ``pairs`` (DataFrames) for the panel."""
    import pandas as pd

    from evaluation.leaderboard import annotators_from_db

    report = annotators_from_db(engine)
    alpha = report["alpha"]
    flagged = [r["annotator"] for r in report["annotators"] if r["flags"]]
    summary = (
        f"**Krippendorff's alpha** (nominal, all votes): {'n/a' if alpha is None else f'{alpha:.3f}'} over "
        f"{report['battles_with_several_votes']} battles with two or more votes. Left share 0.5 = no position bias; "
        f"z scores beyond ±3.29 are flagged (p < 0.001). "
        + (f"**Flagged:** {safe_markdown(', '.join(flagged))}." if flagged else "No annotator is flagged.")
    )
    rows = [{**r, "flags": "; ".join(r["flags"]), "banned": "banned" if r["banned"] else ""} for r in report["annotators"]]
    annotators = pd.DataFrame(rows, columns=ANNOTATOR_COLUMNS).round(3)
    pairs = pd.DataFrame(report["pairs"], columns=PAIR_COLUMNS).round(3)
    return {"summary": summary, "annotators": annotators, "pairs": pairs}


def ban_action(engine: Engine, *, admin: str, name: str, reason: str, lift: bool) -> str:
    """Ban (or lift the ban of) annotator ``name`` as ``admin``; a one-line confirmation."""
    from evaluation.hygiene import ban, unban
    from storage.engine import session_scope

    name = (name or "").strip()
    if not name:
        raise UserError("type the annotator's name first")
    with session_scope(engine) as session:
        if lift:
            unban(session, name=name, by=admin)
        else:
            ban(session, name=name, reason=reason or "", by=admin)
    return (f"{safe_markdown(name)}: {'ban lifted' if lift else 'banned'} "
            f"(their votes {'count again' if lift else 'leave ratings and exports'}).")


def build_annotators_panel(gr, ctx) -> None:
    """Add the panel's components to the open Blocks context (report: action "data"; bans: "admin")."""
    gr.Markdown("### Annotators")
    summary = gr.Markdown("Press Refresh annotators to compute agreement.")
    annotators = gr.Dataframe(interactive=False, label="Per annotator")
    pairs = gr.Dataframe(interactive=False, label="Cohen's kappa per pair (shared battles)")
    button = gr.Button("Refresh annotators")
    with gr.Row():
        who = gr.Textbox(label="Annotator (admins only)", scale=2)
        why = gr.Textbox(label="Reason for the ban", scale=3)
        ban_button = gr.Button("Ban", variant="stop", scale=0)
        unban_button = gr.Button("Lift ban", scale=0)
    status = gr.Markdown("")

    def show(request: gr.Request):
        try:
            ctx.require(request, "data")
            view = annotators_view(ctx.engine)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        return view["summary"], view["annotators"], view["pairs"]

    def act(name: str, reason: str, lift: bool, request: gr.Request):
        try:
            admin = ctx.require(request, "admin")
            return ban_action(ctx.engine, admin=admin.name, name=name, reason=reason, lift=lift)
        except UserError as exc:
            raise gr.Error(str(exc)) from None

    def ban_clicked(name: str, reason: str, request: gr.Request):
        return act(name, reason, False, request)

    def unban_clicked(name: str, reason: str, request: gr.Request):
        return act(name, reason, True, request)

    button.click(show, None, [summary, annotators, pairs], concurrency_limit=4, api_name=False)
    ban_button.click(ban_clicked, [who, why], [status], concurrency_limit=4, api_name=False)
    unban_button.click(unban_clicked, [who, why], [status], concurrency_limit=4, api_name=False)
