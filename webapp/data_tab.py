"""The Data tab: counts and tables of what the database holds.

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


def table_for(engine: Engine, table: str):
    with session_scope(engine) as session:
        return table_frame(session, table=table)


def build_data_tab(gr, ctx) -> None:
    """Add the Data tab's components to the open Blocks context. Researchers and admins only."""
    counts = gr.Markdown("Press Refresh to load the counts.")
    table_name = gr.Radio(list(OVERVIEW_TABLES), value="generations", label="Table")
    frame = gr.Dataframe(interactive=False, wrap=True)
    refresh = gr.Button("Refresh")

    def show(name: str, request: gr.Request):
        try:
            ctx.require(request, "data")
        except UserError as exc:
            raise gr.Error(str(exc)) from None
        if name not in OVERVIEW_TABLES:
            raise gr.Error(f"unknown table {name!r}")
        return counts_markdown(ctx.engine), table_for(ctx.engine, name)

    for event in (table_name.change, refresh.click):
        event(show, table_name, [counts, frame], concurrency_limit=8)

    with gr.Accordion("Annotators", open=False):
        build_annotators_panel(gr, ctx)
