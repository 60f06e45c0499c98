"""ultra long: the tables and columns this step of the schema adds

Nothing, so far: the new generation status ``short`` (a text that ended far short of its target)
fits the existing ``generations.status`` string column, and continuations and per-section
figures are kept in the row's JSON ``params``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Votes: what the Arena page reported about reading (read and seen share per side, active seconds).
    with op.batch_alter_table('votes') as batch:
        batch.add_column(sa.Column('read_left', sa.Float(), nullable=True))
        batch.add_column(sa.Column('read_right', sa.Float(), nullable=True))
        batch.add_column(sa.Column('seen_left', sa.Float(), nullable=True))
        batch.add_column(sa.Column('seen_right', sa.Float(), nullable=True))
        batch.add_column(sa.Column('active_seconds', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('votes') as batch:
        batch.drop_column('active_seconds')
        batch.drop_column('seen_right')
        batch.drop_column('seen_left')
        batch.drop_column('read_right')
        batch.drop_column('read_left')
