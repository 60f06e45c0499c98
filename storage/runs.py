"""Training runs: what was trained, on which data, and what came out."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from core.errors import UserError
from storage.models import TrainingRun, utcnow

RUN_STATUSES = ("running", "complete", "failed")


def start_run(
    session: Session, *, kind: str, base_model: str, config: dict[str, Any], dataset_fingerprint: str | None,
    output_dir: str | None,
) -> TrainingRun:
    run = TrainingRun(kind=kind, base_model=base_model, config=dict(config),
                      dataset_fingerprint=dataset_fingerprint, output_dir=output_dir, status="running")
    session.add(run)
    session.flush()
    return run


def finish_run(
    session: Session, *, run_id: int, status: str, metrics: dict[str, Any] | None = None, model_id: int | None = None
) -> TrainingRun:
    if status not in RUN_STATUSES[1:]:
        raise ValueError(f"final status must be complete or failed, got {status!r}")
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise UserError(f"no training run {run_id}")
    run.status, run.finished_at = status, utcnow()
    if metrics is not None:
        run.metrics = dict(metrics)
    if model_id is not None:
        run.model_id = model_id
    session.add(run)
    session.flush()
    return run
