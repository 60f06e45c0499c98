"""The Data tab: counts and tables of what the database holds.

A viewer who holds an unvoted battle does not see which models wrote its two texts: their
``model_id`` reads :data:`HIDDEN` until the vote or a skip is stored (see
:func:`arena.service.blinded_generation_ids`).

No `from __future__ import annotations` here: Gradio reads the `gr.Request` annotation at run time.
"""


from sqlalchemy.engine import Engine

from storage.engine import session_scope
from core.errors import UserError
from storage.overview import OVERVIEW_TABLES, table_counts, table_frame
from webapp.annotators_panel import build_annotators_panel


def counts_markdown(engine: Engine) -> str:
    with session_scope(engine) as session:
        counts = table_counts(session)
    return " · ".join(f"**{name.replace('_', ' ')}**: {count:,}" for name, count in counts.items())


HIDDEN = "hidden until you vote"


def table_for(engine: Engine, table: str, *, viewer_id: int | None = None):
    """The table's newest rows; for ``generations``, the viewer's unvoted battle texts have no model."""
    from arena.service import blinded_generation_ids

    with session_scope(engine) as session:
        frame = table_frame(session, table=table)
        blind = blinded_generation_ids(session, annotator_id=viewer_id) if viewer_id is not None else set()
    if table == "generations" and blind and len(frame):
        frame["model_id"] = frame["model_id"].astype(object)
        frame.loc[frame["id"].isin(blind), "model_id"] = HIDDEN
    return frame


def json_ready(frame):
    """``frame`` with its date-time columns as ISO text: Gradio's ``/call/`` route writes its answer with
    ``json.dumps``, which cannot write a pandas Timestamp (the page's route could)."""
    frame = frame.copy()
    for column in frame.columns:
        if str(frame[column].dtype).startswith("datetime"):
            frame[column] = frame[column].map(lambda t: t.isoformat() if hasattr(t, "isoformat") else t)
    return frame


def build_data_tab(gr, ctx) -> None:
    """Add the Data tab's components to the open Blocks context. Researchers and admins only."""
    counts = gr.Markdown("Press Refresh to load the counts.")
    table_name = gr.Radio(list(OVERVIEW_TABLES), value="generations", label="Table")
    frame = gr.Dataframe(interactive=False, wrap=True)
    refresh = gr.Button("Refresh")

    def show(name: str, request: gr.Request):
        try:
            who = ctx.require(request, "data")
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        if name not in OVERVIEW_TABLES:
            raise gr.Error(f"unknown table {str(name)[:40]!r}")
        return counts_markdown(ctx.engine), json_ready(table_for(ctx.engine, name, viewer_id=who.user_id))

    for event, api_name in ((table_name.change, False), (refresh.click, "data_table")):
        event(show, table_name, [counts, frame], concurrency_limit=8, api_name=api_name)

    with gr.Accordion("Annotators", open=False):
        build_annotators_panel(gr, ctx)
