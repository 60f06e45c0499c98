"""vote integrity: the client address of each sign-in

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Where each sign-in came from, so that several accounts voting from one address can be noticed
    # (evaluation.hygiene). NULL for sessions made before this revision.
    with op.batch_alter_table('user_sessions') as batch:
        batch.add_column(sa.Column('address', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('user_sessions') as batch:
        batch.drop_column('address')
