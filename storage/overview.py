"""Read-only overviews of the database for the Data tab and ``--json`` listings."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import Battle, Generation, ModelEntry, Prompt, TrainingRun, User, Vote

OVERVIEW_TABLES = {
    "models": ModelEntry,
    "prompts": Prompt,
    "generations": Generation,
    "battles": Battle,
    "votes": Vote,
    "users": User,
    "training_runs": TrainingRun,
}
_HIDDEN_COLUMNS = {"password_hash"}


def table_counts(session: Session) -> dict[str, int]:
    return {
        name: session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        for name, table in OVERVIEW_TABLES.items()
    }


def table_frame(session: Session, *, table: str, limit: int = 200):
    """The newest ``limit`` rows of ``table`` as a DataFrame; long texts are cut to 200 characters."""
    import pandas as pd

    model = OVERVIEW_TABLES[table]
    columns = [c for c in model.__table__.columns if c.name not in _HIDDEN_COLUMNS]
    rows = session.execute(sa.select(*columns).order_by(model.id.desc()).limit(limit)).all()
    frame = pd.DataFrame(rows, columns=[c.name for c in columns])
    for column in frame.columns:
        dtype = frame[column].dtype  # pandas 3 gives text its own ``str`` dtype, not ``object``
        if dtype == object or pd.api.types.is_string_dtype(dtype):
            frame[column] = frame[column].map(_short)
    return frame


def _short(value):
    if isinstance(value, str) and len(value) > 200:
        return value[:199] + "…"
    if isinstance(value, (dict, list)):
        return _short(str(value))
    return value
