"""Annotator reliability for the Data tab (researchers and admins): agreement and habits.

Wire it inside the Data tab's builder with ``build_annotators_panel(gr, ctx)``.
No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation at run time.
"""

from typing import Any

from sqlalchemy.engine import Engine

from core.errors import UserError

ANNOTATOR_COLUMNS = ["annotator", "votes", "median_reading_seconds", "agreement_with_majority", "left_share", "tie_share",
                     "both_bad_share"]
PAIR_COLUMNS = ["annotator_1", "annotator_2", "shared", "agreement", "kappa"]


def annotators_view(engine: Engine) -> dict[str, Any]:
    """``summary`` (markdown), ``annotators`` and ``pairs`` (DataFrames) for the panel."""
    import pandas as pd

    from evaluation.leaderboard import annotators_from_db

    report = annotators_from_db(engine)
    alpha = report["alpha"]
    summary = (
        f"**Krippendorff's alpha** (nominal, all votes): {'n/a' if alpha is None else f'{alpha:.3f}'} over "
        f"{report['battles_with_several_votes']} battles with two or more votes. Left share 0.5 = no position bias."
    )
    annotators = pd.DataFrame(report["annotators"], columns=ANNOTATOR_COLUMNS).round(3)
    pairs = pd.DataFrame(report["pairs"], columns=PAIR_COLUMNS).round(3)
    return {"summary": summary, "annotators": annotators, "pairs": pairs}


def build_annotators_panel(gr, ctx) -> None:
    """Add the panel's components to the open Blocks context (action "data")."""
    gr.Markdown("### Annotators")
    summary = gr.Markdown("Press Refresh annotators to compute agreement.")
    annotators = gr.Dataframe(interactive=False, label="Per annotator")
    pairs = gr.Dataframe(interactive=False, label="Cohen's kappa per pair (shared battles)")
    button = gr.Button("Refresh annotators")

    def show(request: gr.Request):
        try:
            ctx.require(request, "data")
            view = annotators_view(ctx.engine)
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        return view["summary"], view["annotators"], view["pairs"]

    button.click(show, None, [summary, annotators, pairs], concurrency_limit=4, api_name=False)
