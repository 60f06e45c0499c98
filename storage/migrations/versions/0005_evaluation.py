"""evaluation: annotator bans, per-request rubrics and rubric scores, judge verdicts on stored battles

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from storage.models import UTCDateTime

    op.create_table(
        'annotator_bans',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('banned_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('lifted_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('lifted_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['banned_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['lifted_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_annotator_bans_user_id', 'annotator_bans', ['user_id'])
    op.create_table(
        'rubrics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('prompt_id', sa.Integer(), nullable=False),
        sa.Column('criteria', sa.JSON(), nullable=False),
        sa.Column('source', sa.String(length=160), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('prompt_id'),
    )
    op.create_table(
        'rubric_scores',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('rubric_id', sa.Integer(), nullable=False),
        sa.Column('generation_id', sa.Integer(), nullable=False),
        sa.Column('judge', sa.String(length=128), nullable=False),
        sa.Column('criterion', sa.String(length=200), nullable=False),
        sa.Column('score', sa.Integer(), nullable=True),
        sa.Column('justification', sa.Text(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['rubric_id'], ['rubrics.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['generation_id'], ['generations.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rubric_scores_rubric_id', 'rubric_scores', ['rubric_id'])
    op.create_index('ix_rubric_scores_generation_id', 'rubric_scores', ['generation_id'])
    op.create_table(
        'judge_verdicts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('battle_id', sa.Integer(), nullable=False),
        sa.Column('judge', sa.String(length=128), nullable=False),
        sa.Column('left_first', sa.Boolean(), nullable=False),
        sa.Column('verdict', sa.String(length=8), nullable=True),
        sa.Column('reply', sa.Text(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['battle_id'], ['battles.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('battle_id', 'judge', 'left_first', name='uq_judge_verdict_order'),
    )
    op.create_index('ix_judge_verdicts_battle_id', 'judge_verdicts', ['battle_id'])


def downgrade() -> None:
    op.drop_table('judge_verdicts')
    op.drop_table('rubric_scores')
    op.drop_table('rubrics')
    op.drop_table('annotator_bans')
