"""The Data tab: counts and tables of what the database holds.

A viewer who holds an unvoted battle learns nothing here about who wrote its two texts until the
vote or a skip is stored (see :func:`arena.service.blinded_generation_ids`): each of those
generation rows shows only its request (``prompt_id``), status and pool mark, every other cell,
the id included, reads :data:`HIDDEN` (a template in ``params``, the tokenizer's ``prompt_tokens``,
timings, the seed or a neighbouring id can each name the model), and the rows are listed last, not
in id order; the battle's own row hides its generation ids and ``extra``.

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


SHOWN_OF_HELD_TEXTS = ("prompt_id", "status", "in_pool")
"""The only cells of a held battle's generation row a viewer sees before voting."""


def table_for(engine: Engine, table: str, *, viewer_id: int | None = None):
    """The table's newest rows, with the viewer's held battle texts blinded (see the module docstring)."""
    from arena.service import blinded_generation_ids

    with session_scope(engine) as session:
        frame = table_frame(session, table=table)
        blind = blinded_generation_ids(session, annotator_id=viewer_id) if viewer_id is not None else set()
    if not blind or not len(frame):
        return frame
    if table == "generations":
        held = frame["id"].isin(blind)
        hidden = [c for c in frame.columns if c not in SHOWN_OF_HELD_TEXTS]
    elif table == "battles":
        held = frame["left_generation_id"].isin(blind) | frame["right_generation_id"].isin(blind)
        hidden = ["left_generation_id", "right_generation_id", "extra"]
    else:
        return frame
    if not held.any():
        return frame
    frame = frame.astype({c: object for c in hidden})
    frame.loc[held, hidden] = HIDDEN
    return _last(frame, held) if table == "generations" else frame


def _last(frame, rows):
    """``frame`` with ``rows`` (a mask) moved to the end: hidden rows must not sit in id order."""
    import pandas as pd

    return pd.concat([frame[~rows], frame[rows]], ignore_index=True)


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
