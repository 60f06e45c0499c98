"""training signal: the tables and columns this step of the schema adds

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The last step a training run saved as a TRL checkpoint (what --resume starts from).
    with op.batch_alter_table('training_runs') as batch:
        batch.add_column(sa.Column('last_saved_step', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('training_runs') as batch:
        batch.drop_column('last_saved_step')
