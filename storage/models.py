"""The tables. Every timestamp is timezone-aware (UTC); every reference is a foreign key.

Each table is one box of the loop in DESIGN.md: prompts and models produce generations,
generations pair up into battles, battles are assigned to annotators who vote, votes feed
ratings and training runs, and a training run produces a new model.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """A DateTime that always comes back timezone-aware, in UTC, on SQLite as on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC timestamps")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def _ts(*, index: bool = False) -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False, index=index))


def _optional_ts() -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True))


def _json(default=dict) -> Any:
    return Field(default_factory=default, sa_column=sa.Column(sa.JSON, nullable=False))


def _fk(target: str, *, nullable: bool = False, index: bool = True, ondelete: str | None = None) -> Any:
    return Field(
        default=None,
        sa_column=sa.Column(
            sa.Integer, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index
        ),
    )


class Role(str, enum.Enum):
    writer = "writer"
    annotator = "annotator"
    researcher = "researcher"
    admin = "admin"


class GenerationStatus(str, enum.Enum):
    streaming = "streaming"
    complete = "complete"
    truncated = "truncated"
    interrupted = "interrupted"
    failed = "failed"
    short = "short"
    """Ended by the model far short of its target (it can be continued)."""


class Winner(str, enum.Enum):
    left = "left"
    right = "right"
    tie = "tie"
    both_bad = "both_bad"


class Backend(str, enum.Enum):
    local = "local"
    openai = "openai"


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    role: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    password_hash: str = Field(default="", sa_column=sa.Column(sa.String(256), nullable=False))
    flagged: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, default=False))
    created_at: datetime = _ts()


class ModelEntry(SQLModel, table=True):
    """A servable model: where it runs, how it is prompted, and what it was trained from."""

    __tablename__ = "models"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(128), nullable=False, unique=True))
    backend: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    base_url: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(512), nullable=True))
    model_id: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(256), nullable=True))
    path: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(1024), nullable=True))
    template: str = Field(default="think", sa_column=sa.Column(sa.String(16), nullable=False))
    sampling: dict = _json()
    parent_id: Optional[int] = _fk("models.id", nullable=True, ondelete="SET NULL")
    created_at: datetime = _ts()


class Prompt(SQLModel, table=True):
    __tablename__ = "prompts"
    id: Optional[int] = Field(default=None, primary_key=True)
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    category: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(128), nullable=True, index=True))
    target_words: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    language: str = Field(default="en", sa_column=sa.Column(sa.String(8), nullable=False))
    source: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(256), nullable=True))
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime = _ts()


class Generation(SQLModel, table=True):
    """One answer to one prompt by one model, written while it streams and finished at the end."""

    __tablename__ = "generations"
    __table_args__ = (
        sa.Index("ix_generations_prompt_model", "prompt_id", "model_id"),
        sa.Index("ix_generations_author_created", "author_id", "created_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = _fk("prompts.id", index=False, ondelete="CASCADE")
    model_id: int = _fk("models.id", ondelete="CASCADE")
    author_id: Optional[int] = _fk("users.id", nullable=True, index=False, ondelete="SET NULL")
    think: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    answer: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    params: dict = _json()
    seed: Optional[int] = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    status: str = Field(default="streaming", sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    finish_reason: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(32), nullable=True))
    error: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    prompt_tokens: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    completion_tokens: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    think_words: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    answer_words: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))
    ttft_ms: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    duration_ms: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    in_pool: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, default=False, index=True))
    extra: dict = _json()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Battle(SQLModel, table=True):
    """Two generations for the same prompt, with the side each is shown on fixed at creation.

    A deleted generation leaves its side NULL; such a battle is skipped, its votes kept.
    """

    __tablename__ = "battles"
    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = _fk("prompts.id", ondelete="CASCADE")
    left_generation_id: Optional[int] = _fk("generations.id", nullable=True, ondelete="SET NULL")
    right_generation_id: Optional[int] = _fk("generations.id", nullable=True, ondelete="SET NULL")
    mode: str = Field(default="pool", sa_column=sa.Column(sa.String(16), nullable=False))
    extra: dict = _json()
    created_at: datetime = _ts()


class Assignment(SQLModel, table=True):
    """A battle shown to an annotator; reading time is measured from here to the vote."""

    __tablename__ = "assignments"
    __table_args__ = (sa.UniqueConstraint("battle_id", "annotator_id", name="uq_assignment_battle_annotator"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    battle_id: int = _fk("battles.id", ondelete="CASCADE")
    annotator_id: int = _fk("users.id", ondelete="CASCADE")
    assigned_at: datetime = _ts()
    skipped: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, default=False))


class Vote(SQLModel, table=True):
    __tablename__ = "votes"
    __table_args__ = (sa.UniqueConstraint("battle_id", "annotator_id", name="uq_vote_battle_annotator"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    battle_id: int = _fk("battles.id", ondelete="CASCADE")
    annotator_id: int = _fk("users.id", ondelete="CASCADE")
    winner: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    criteria: dict = _json()
    reason: Optional[str] = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    reading_seconds: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    # What the page reported about reading (see arena/reading.py), clamped by the server:
    # the deepest share of each side reached, the share actually on screen, and the seconds of active reading.
    read_left: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    read_right: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    seen_left: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    seen_right: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    active_seconds: Optional[float] = Field(default=None, sa_column=sa.Column(sa.Float, nullable=True))
    flags: list = _json(list)
    flagged: bool = Field(default=False, sa_column=sa.Column(sa.Boolean, nullable=False, default=False, index=True))
    created_at: datetime = _ts(index=True)


class TrainingRun(SQLModel, table=True):
    __tablename__ = "training_runs"
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    base_model: str = Field(default="", sa_column=sa.Column(sa.String(1024), nullable=False, default=""))
    config: dict = _json()
    dataset_fingerprint: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))
    status: str = Field(default="running", sa_column=sa.Column(sa.String(16), nullable=False, index=True))
    metrics: dict = _json()
    output_dir: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(1024), nullable=True))
    model_id: Optional[int] = _fk("models.id", nullable=True, ondelete="SET NULL")
    created_at: datetime = _ts()
    finished_at: Optional[datetime] = _optional_ts()
    last_saved_step: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))


TABLES = (User, ModelEntry, Prompt, Generation, Battle, Assignment, Vote, TrainingRun)


class SigninFailure(SQLModel, table=True):
    """One refused sign-in: the name tried and the client address, for throttling across processes."""

    __tablename__ = "signin_failures"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, index=True))
    address: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, index=True))
    created_at: datetime = _ts(index=True)


class UserSession(SQLModel, table=True):
    """A sign-in, honoured by every process on the database. Only a hash of the token is stored."""

    __tablename__ = "user_sessions"
    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    user_id: int = _fk("users.id", ondelete="CASCADE")
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    revoked_at: Optional[datetime] = _optional_ts()
    # The client address the sign-in came from (as the throttle sees it): several accounts voting
    # from one address is a sign of one person voting as many (see evaluation.hygiene).
    address: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(64), nullable=True))


class AnnotatorBan(SQLModel, table=True):
    """An annotator banned by an admin: their votes leave ratings and exports until the ban is lifted.

    Bans are never deleted: lifting one sets ``lifted_at``, so the record of who banned whom, why
    and when stays. At most one ban per annotator is active (``lifted_at`` NULL).
    """

    __tablename__ = "annotator_bans"
    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = _fk("users.id", ondelete="CASCADE")
    reason: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    banned_by_id: Optional[int] = _fk("users.id", nullable=True, index=False, ondelete="SET NULL")
    created_at: datetime = _ts()
    lifted_at: Optional[datetime] = _optional_ts()
    lifted_by_id: Optional[int] = _fk("users.id", nullable=True, index=False, ondelete="SET NULL")


class Rubric(SQLModel, table=True):
    """A request's own scoring criteria (WritingBench style), from a file or written once by a judge."""

    __tablename__ = "rubrics"
    id: Optional[int] = Field(default=None, primary_key=True)
    prompt_id: int = Field(sa_column=sa.Column(sa.Integer, sa.ForeignKey("prompts.id", ondelete="CASCADE"),
                                               nullable=False, unique=True))
    criteria: list = _json(list)
    source: str = Field(default="file", sa_column=sa.Column(sa.String(160), nullable=False, default="file"))
    created_at: datetime = _ts()


class RubricScore(SQLModel, table=True):
    """One criterion of one answer scored 1-10 by a judge; ``score`` NULL when the reply had no score."""

    __tablename__ = "rubric_scores"
    id: Optional[int] = Field(default=None, primary_key=True)
    rubric_id: int = _fk("rubrics.id", ondelete="CASCADE")
    generation_id: int = _fk("generations.id", ondelete="CASCADE")
    judge: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    criterion: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    score: Optional[int] = Field(default=None, sa_column=sa.Column(sa.Integer, nullable=True))
    justification: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    created_at: datetime = _ts()


class JudgeVerdict(SQLModel, table=True):
    """A judge model's verdict on a stored battle in one order (``left_first``), for agreement with the votes.

    ``verdict`` is ``left``, ``right`` or ``tie`` in the battle's own sides, NULL when the reply had none.
    """

    __tablename__ = "judge_verdicts"
    __table_args__ = (sa.UniqueConstraint("battle_id", "judge", "left_first", name="uq_judge_verdict_order"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    battle_id: int = _fk("battles.id", ondelete="CASCADE")
    judge: str = Field(sa_column=sa.Column(sa.String(128), nullable=False))
    left_first: bool = Field(sa_column=sa.Column(sa.Boolean, nullable=False))
    verdict: Optional[str] = Field(default=None, sa_column=sa.Column(sa.String(8), nullable=True))
    reply: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False, default=""))
    created_at: datetime = _ts()
